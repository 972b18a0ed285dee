"""The joystick driver table: every joystick `type`, its station-config keys, its driver config and its driver.

One table serves the station config schema (`options`: the keys of a `joysticks` entry of that type), the station
(`build`: the driver of an entry, with what the station around it offers) and `excap joystick monitor|calibrate`
(`config_class` / `driver_class`: a driver from a command-line spec). Drivers are imported when first used, so the
table itself is cheap to import.

Type `sim` is the scripted operator when a simulated machine is running (a simulated station), and a joystick
sweeping its axes otherwise (the joystick tools).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from excap.drivers.config_schema import ConfigModel
from excap.drivers.device_schema import HidOptions, J1939Options, SerialOptions, SimOptions
from excap.drivers.joystick.base import SampleCallback

EventFunction = Callable[..., None]
"""(kind, t_ns=None, **detail) -> None, like `Recorder.event`."""


@dataclass(frozen=True)
class JoystickSetup:
    """One joystick entry: its name, the axes and buttons it reports (in order) and its driver keys."""

    name: str
    axes: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class JoystickContext:
    """What the station around a joystick offers its driver (each type uses what it needs)."""

    listen: Callable[[Any], None] | None = None
    """j1939: adds a python-can Listener to the CAN bus the joystick is read from."""
    machine: Any = None
    """sim: the simulated machine the scripted operator watches (None: no simulated machine)."""
    mapper: Any = None
    """sim: the station's CommandMapper (profile and control pattern) the scripted operator moves sticks for."""
    seed: int = 0
    event: EventFunction | None = None
    commands_blocked: Callable[[], bool] | None = None
    """sim: whether the station holds the commands neutral (the scripted operator then re-arms)."""


def _load(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class JoystickType:
    name: str
    options: type[ConfigModel]
    """The keys of a station-config `joysticks` entry of this type (besides name, axes, buttons, calibration)."""
    config_path: str
    driver_path: str
    config_values: Callable[[JoystickSetup], dict[str, Any]]
    """The driver config's keyword values for an entry."""
    periodic: bool = True
    """Reports at a fixed rate, so silence means stale (HID devices only report changes)."""
    builder: Callable[[JoystickType, Any, SampleCallback, JoystickContext], Any] | None = None
    """How the driver is built when it needs more than (config, on_sample)."""

    @property
    def config_class(self) -> type:
        return _load(self.config_path)

    @property
    def driver_class(self) -> Callable[..., Any]:
        return _load(self.driver_path)

    def config(self, setup: JoystickSetup) -> Any:
        return self.config_class(**self.config_values(setup))

    def build(self, setup: JoystickSetup, on_sample: SampleCallback, context: JoystickContext | None = None) -> Any:
        """The driver of one entry, not opened yet."""
        config = self.config(setup)
        if self.builder is not None:
            return self.builder(self, config, on_sample, context or JoystickContext())
        return self.driver_class(config, on_sample)


def _j1939(kind: JoystickType, config: Any, on_sample: SampleCallback, context: JoystickContext) -> Any:
    driver = kind.driver_class(config, on_sample)
    if context.listen is None:
        raise ValueError(f"joystick {config.name}: a j1939 joystick needs the CAN bus it is read from")
    context.listen(driver.listener())
    return driver


def _sim(kind: JoystickType, config: Any, on_sample: SampleCallback, context: JoystickContext) -> Any:
    if context.machine is None:
        return kind.driver_class(config, on_sample)
    from excap.drivers.sim.scripted_joystick import ScriptedJoystick

    operator = context.machine.kind.operator(context.mapper, seed=context.seed)
    return ScriptedJoystick(config.name, operator, context.machine,
                            on_sample, context.event, rate_hz=config.rate_hz,
                            commands_blocked=context.commands_blocked, stalls=config.stalls)


SIM_RATE_HZ = 100.0
"""Rate of a station's `sim` joystick (the scripted operator's hands) unless its options say otherwise."""


def _sim_values(setup: JoystickSetup) -> dict[str, Any]:
    values = {"name": setup.name, "rate_hz": SIM_RATE_HZ, "axis_count": len(setup.axes),
              "button_count": len(setup.buttons), **setup.options}
    if "stalls" in values:
        values["stalls"] = tuple(tuple(stall) for stall in values["stalls"])
    return values


def _table(types: Sequence[JoystickType]) -> dict[str, JoystickType]:
    return {kind.name: kind for kind in types}


JOYSTICK_TYPES: dict[str, JoystickType] = _table([
    JoystickType("hid", HidOptions, "excap.drivers.joystick.hid_joystick.HidJoystickConfig",
                 "excap.drivers.joystick.hid_joystick.HidJoystick",
                 lambda s: {"name": s.name, **s.options, "axes": s.axes, "buttons": s.buttons}, periodic=False),
    JoystickType("serial", SerialOptions, "excap.drivers.joystick.serial_joystick.SerialJoystickConfig",
                 "excap.drivers.joystick.serial_joystick.SerialJoystick",
                 lambda s: {"device": s.name, **s.options}),
    JoystickType("j1939", J1939Options, "excap.drivers.joystick.j1939_joystick.J1939JoystickConfig",
                 "excap.drivers.joystick.j1939_joystick.J1939Joystick",
                 lambda s: {"name": s.name, **s.options}, builder=_j1939),
    JoystickType("sim", SimOptions, "excap.drivers.joystick.sim_joystick.SimJoystickConfig",
                 "excap.drivers.joystick.sim_joystick.SimJoystick", _sim_values, builder=_sim),
])


def joystick_type(name: str) -> JoystickType:
    """The table's entry for `name`; ValueError naming the known types otherwise."""
    try:
        return JOYSTICK_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown joystick type {name!r} (known: {', '.join(JOYSTICK_TYPES)})") from None


__all__ = ["JOYSTICK_TYPES", "JoystickContext", "JoystickSetup", "JoystickType", "joystick_type"]
