"""The simulated station: one builder and one run path for `record --sim`, `station --sim`, `node --sim`, the tests
and the benches.

`simulated_station(options)` is a StationConfig like one read from a file: the scripted operator as joystick
`operator` (type `sim`, every profile axis and button), the simulated machine of the profile's `kind` (excavator,
wheel loader: `excap.drivers.sim.machines`) answering cab-joystick frames on a private python-can `virtual` bus
`can0` (commands sent there, every frame recorded and decoded), and `options.cameras` rendered cameras of that
machine (excavator: side, top, ...; wheel loader: front, rear, ...). `StationRuntime` runs it like any station,
so the command link, its safety (stale input -> neutral, re-enable from neutral) and the certification check are
the station's.

Certification: a simulated station runs the same registry check as a real one and records the same
`certification` event. The scripted operator is in no operator registry, so a simulated station records under
policy `mark` by default (the episode's `certification` attribute says `UNCERTIFIED: ...`), so a demo runs without
a registry; an operator certified in `OUT_DIR/.excap/operators.yaml` is recorded as certified, and
`certification_policy="refuse"` makes the simulated station refuse an uncertified operator exactly as a real one
does.

`run_sim_session(options)` records one episode on it (`excap record --sim`).
"""

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from excap.core.errors import ConfigError
from excap.drivers import limits
from excap.drivers.camera.opencv_camera import CameraConfig
from excap.drivers.can.bus_config import CanBusConfig
from excap.drivers.machine.profiles import DEFAULT_PROFILE, load_profile
from excap.drivers.sim.machines import sim_machine
from excap.people.certification import canonical_policy
from excap.record.recorder import Recorder
from excap.station.config import (
    SIM_CAMERA_PREFIX,
    CommandSettings,
    InputSource,
    JoystickEntry,
    StationConfig,
)
from excap.station.runtime import StationRuntime
from excap.station.session import run_station_session

SIM_JOYSTICK = "operator"
SIM_BUS = "can0"
SIM_POLICY = "mark"


@dataclass
class SimSessionOptions:
    out_dir: Path
    duration_s: float | None = 30.0
    pattern: str | None = None
    cameras: int = 2
    width: int = 640
    height: int = 480
    fps: float = 30.0
    jpeg_quality: int = 90
    seed: int = 0
    profile: str = DEFAULT_PROFILE
    machine_id: str = ""
    """Default: `sim-<kind>-01` (sim-excavator-01, sim-wheel-loader-01)."""
    operator_id: str = "sim-operator"
    site: str = "simulated-site"
    task: str | None = None
    """None: the machine kind's usual task (dig-and-load, load-and-carry); "" leaves it out."""
    notes: str = ""
    certification_policy: str = SIM_POLICY
    """The station's certification policy (the scripted operator is in no registry: see the module)."""
    joystick_rate_hz: float = 100.0
    stale_timeout_s: float = 0.1
    """The command link's stale-input timeout (long recordings on a loaded machine may want more slack)."""
    joystick_stalls: tuple[tuple[float, float], ...] = ()
    """Fault drills: (at_s, for_s) windows after the station opens in which the scripted operator's joystick
    reports nothing (a stale input)."""
    station_id: str = "sim-station"

    def __post_init__(self) -> None:
        if self.duration_s is not None:
            self.duration_s = limits.DURATION_S.check(self.duration_s, "duration_s")
        self.cameras = limits.SIM_CAMERAS.check(self.cameras, "cameras")
        self.width = limits.CAMERA_SIZE.check(self.width, "width")
        self.height = limits.CAMERA_SIZE.check(self.height, "height")
        self.fps = limits.CAMERA_FPS.check(self.fps, "fps")
        self.jpeg_quality = limits.JPEG_QUALITY.check(self.jpeg_quality, "jpeg_quality")
        self.joystick_rate_hz = limits.SIM_JOYSTICK_RATE_HZ.check(self.joystick_rate_hz, "joystick_rate_hz")
        self.stale_timeout_s = limits.STALE_TIMEOUT_S.check(self.stale_timeout_s, "stale_timeout_s")
        try:
            self.certification_policy = canonical_policy(self.certification_policy)
        except ValueError as exc:
            raise ConfigError(f"certification_policy must be one of refuse, mark (or mark_uncertified), "
                              f"not {self.certification_policy!r}") from exc

    @property
    def session(self) -> dict[str, str]:
        """The station's `session`: episode metadata defaults and the certification policy (empty values left out)."""
        values = {"operator": self.operator_id, "site": self.site, "task": self.task or "", "notes": self.notes}
        return {"certification_policy": self.certification_policy, **{k: v for k, v in values.items() if v}}


def simulated_station(options: SimSessionOptions) -> StationConfig:
    """The simulated station of `options` (checked: the simulator must have a machine of the profile's kind)."""
    profile = load_profile(options.profile)
    if profile.cab_joysticks is None:
        raise ConfigError(f"{profile.source}: the simulated machine needs a cab_joysticks section")
    try:
        machine = sim_machine(profile.kind)
    except ConfigError as exc:
        raise ConfigError(f"{profile.source}: {exc}") from None
    pattern = (options.pattern or profile.default_pattern).lower()
    if pattern not in profile.patterns:
        raise ConfigError(f"{profile.source}: profile {profile.name} has no pattern {pattern!r} "
                          f"(has: {', '.join(profile.patterns)})")
    joystick_options: dict[str, object] = {"rate_hz": options.joystick_rate_hz}
    if options.joystick_stalls:
        joystick_options["stalls"] = tuple((float(at), float(length)) for at, length in options.joystick_stalls)
    operator = JoystickEntry(name=SIM_JOYSTICK, type="sim", axes=tuple(profile.axes), buttons=tuple(profile.buttons),
                             options=joystick_options)
    cameras = [CameraConfig(name=machine.camera_name(i), source=f"{SIM_CAMERA_PREFIX}{machine.view_for_camera(i)}",
                            width=options.width, height=options.height, fps=options.fps)
               for i in range(options.cameras)]
    return StationConfig(
        path=Path("<simulated station>"), station_id=options.station_id, out_dir=options.out_dir, profile=profile,
        pattern=pattern, machine_id=options.machine_id or f"sim-{profile.kind.replace('_', '-')}-01",
        simulated_machine=True,
        session={**options.session, **({"task": machine.default_task} if options.task is None else {})},
        joysticks=[operator],
        axis_inputs={name: InputSource(SIM_JOYSTICK, i) for i, name in enumerate(profile.axes)},
        button_inputs={name: InputSource(SIM_JOYSTICK, i) for i, name in enumerate(profile.buttons)},
        # the station's own command frames come back from the bus in wire order with the bus's stamp, as on a
        # SocketCAN interface with loopback: recorded by the reader with the machine's frames, in time order
        cans=[CanBusConfig(name=SIM_BUS, interface="virtual", channel=f"excap-sim-{uuid.uuid4().hex[:12]}",
                           receive_own_messages=True)],
        cameras=cameras,
        command=CommandSettings(bus=SIM_BUS, rate_hz=profile.cab_joysticks.rate_hz,
                                stale_timeout_s=options.stale_timeout_s))


def run_sim_session(options: SimSessionOptions, stop: threading.Event | None = None,
                    on_started: Callable[[Recorder], None] | None = None,
                    on_open: Callable[[StationRuntime], None] | None = None, wait_devices_s: float = 5.0,
                    start_anyway: bool = False) -> Path:
    """Record one episode on the simulated station; ends after `duration_s` or when `stop` is set.

    Returns the episode path. Raises CertificationRefused (nothing recorded) under policy `refuse` for an operator
    the registry does not certify. The start waits (bounded) for the simulated devices to deliver, as any station's.
    """
    return run_station_session(simulated_station(options), stop, duration_s=options.duration_s,
                               on_started=on_started, seed=options.seed, jpeg_quality=options.jpeg_quality,
                               on_open=on_open, wait_devices_s=wait_devices_s, start_anyway=start_anyway)


__all__ = ["SIM_POLICY", "SimSessionOptions", "run_sim_session", "simulated_station"]
