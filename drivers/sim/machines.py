"""The simulated machine kinds: one entry per profile `kind`, everything the simulator needs to run that machine.

Adding a kind means a model (a class with `state` and `step(dt, commands, enabled)`), the values its ECUs report
for each message of its DBC, its cab wiring, a scripted operator, a camera renderer and one `SimMachineKind`
here; the simulated machine, the station's simulated joystick and cameras, `record --sim`, `station --sim` and
`node --sim` take everything from this table. Heavy parts (OpenCV renderers, operators) are imported on first use.
"""

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from excap.core.errors import ConfigError
from excap.drivers.machine.cab_joysticks import CabJoystickLayout
from excap.drivers.sim.cab_wiring import EXCAVATOR_CAB, LOADER_CAB
from excap.drivers.sim.j1939_traffic import MessageValues
from excap.schemas import schema_file


class MachineModel(Protocol):
    """A machine's physics: integrates its state from machine-function commands."""

    @property
    def state(self) -> Any: ...

    def step(self, dt: float, commands: tuple[float, ...], enabled: bool) -> Any: ...


@dataclass(frozen=True)
class SimJoint:
    """A joint of the simulated machine as the ROS node publishes it: its name, and the state attributes of its
    position (rad) and velocity (rad/s)."""

    name: str
    position: str
    velocity: str

    def of(self, state: Any) -> tuple[float, float]:
        return float(getattr(state, self.position)), float(getattr(state, self.velocity))


class ViewRenderer(Protocol):
    def render(self, state: Any, frame_index: int, label: str) -> Any: ...


def _load(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class SimMachineKind:
    kind: str
    functions: tuple[str, ...]
    cab: CabJoystickLayout
    dbc: Path
    """The machine's own CAN database (the first DBC of its profiles)."""
    views: tuple[str, ...]
    """Camera views the renderer draws; camera i of a simulated station shows views[i % len(views)]."""
    default_task: str
    _model: str
    _message_values: str
    _operator: str
    _renderer: str
    joints: tuple[SimJoint, ...] = ()
    """The joints of the model's state, in the order they are published (the CAN-reported joints of the kind,
    `excap.schemas.machine_kinds`, first and in their order)."""

    def model(self, seed: int = 0) -> MachineModel:
        model: MachineModel = _load(self._model)(seed=seed)
        return model

    @property
    def message_values(self) -> MessageValues:
        values: MessageValues = _load(self._message_values)
        return values

    def operator(self, mapper: Any, seed: int = 0) -> Any:
        """The scripted operator (its `sample(state, commands_blocked)` gives stick positions and the phase)."""
        return _load(self._operator)(mapper, seed=seed)

    def renderer(self, view: str, width: int, height: int, seed: int = 0) -> ViewRenderer:
        if view not in self.views:
            raise ValueError(f"unknown camera view {view!r} of the simulated {self.kind} "
                             f"(known: {', '.join(self.views)})")
        renderer: ViewRenderer = _load(self._renderer)(view, width, height, seed=seed)
        return renderer

    def view_for_camera(self, index: int) -> str:
        return self.views[index % len(self.views)]

    def camera_name(self, index: int) -> str:
        view = self.view_for_camera(index)
        return view if index < len(self.views) else f"{view}{index // len(self.views) + 1}"


SIM_MACHINES: dict[str, SimMachineKind] = {entry.kind: entry for entry in (
    SimMachineKind(
        "excavator", ("boom", "arm", "bucket", "swing", "travel_left", "travel_right"), EXCAVATOR_CAB,
        schema_file("can/excavator_j1939.dbc"), ("side", "top"), "dig-and-load",
        "excap.drivers.sim.excavator.ExcavatorModel", "excap.drivers.sim.excavator_signals.excavator_message_values",
        "excap.drivers.sim.operator.ScriptedOperator", "excap.drivers.sim.cameras.ViewRenderer",
        joints=tuple(SimJoint(name, name, f"{name}_rate") for name in ("swing", "boom", "arm", "bucket"))),
    SimMachineKind(
        "wheel_loader", ("lift", "tilt", "steer", "throttle", "brake", "direction"), LOADER_CAB,
        schema_file("can/wheel_loader_j1939.dbc"), ("front", "rear"), "load-and-carry",
        "excap.drivers.sim.wheel_loader.WheelLoaderModel",
        "excap.drivers.sim.wheel_loader_signals.wheel_loader_message_values",
        "excap.drivers.sim.loader_operator.LoaderOperator", "excap.drivers.sim.loader_cameras.LoaderViewRenderer",
        joints=(SimJoint("articulation", "articulation", "articulation_rate"), SimJoint("lift", "lift", "lift_rate"),
                SimJoint("tilt", "bucket_angle", "bucket_rate"), SimJoint("wheels", "wheel_angle", "wheel_rate"))),
)}


def sim_machine(kind: str) -> SimMachineKind:
    """The simulated machine of a profile `kind`; ConfigError naming the known kinds if there is none."""
    try:
        return SIM_MACHINES[kind]
    except KeyError:
        raise ConfigError(f"no simulated machine of kind {kind!r} (known: {', '.join(SIM_MACHINES)})") from None


