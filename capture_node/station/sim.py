"""A recording session on the simulated excavator, driven by the scripted operator.

Wiring: operator sticks -> command link (profile mapping, enable and safety) -> BJM1 frames on a
python-can `virtual` bus -> simulated machine. The machine's J1939 traffic (and the command
frames) on that bus and its rendered cameras are recorded exactly as real devices would be.
A device thread that dies is a `fault` event in the episode (the scripted operator's neutralises
the commands first), never silence.
"""

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import can

from excap.core.clock import now_ns
from excap.core.errors import ConfigError
from excap.core.periodic import Late, Periodic, wait_until
from excap.drivers import limits
from excap.drivers.base import ThreadGuard
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, LinkState, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import DEFAULT_PROFILE, load_profile
from excap.drivers.sim.camera_source import SimulatedCamera
from excap.drivers.sim.cameras import camera_name, view_for_camera
from excap.drivers.sim.machine import SimulatedExcavator
from excap.drivers.sim.operator import ScriptedOperator
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, control_spec, joystick_spec
from excap.record.can_capture import CanCapture
from excap.record.jpeg import JpegEncoder
from excap.record.recorder import Recorder, RecorderConfig
from excap.station.config import SIMULATED_MACHINE_KIND
from excap.station.devices import watch_faults


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
    machine_id: str = "sim-excavator-01"
    operator_id: str = "sim-operator"
    certification: str = ""
    site: str = "simulated-site"
    task: str = "dig-and-load"
    notes: str = ""
    joystick_rate_hz: float = 100.0
    stale_timeout_s: float = 0.1
    """The command link's stale-input timeout (long recordings on a loaded machine may want more slack)."""

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


class _OperatorLoop:
    """The scripted operator's hands on the sticks: a periodic joystick device at `rate_hz`."""

    def __init__(self, recorder: Recorder, machine: SimulatedExcavator, operator: ScriptedOperator,
                 link: CommandLink, rate_hz: float) -> None:
        profile = operator.mapper.profile
        self.joystick = recorder.add_stream(joystick_spec("operator", profile.axes, profile.buttons,
                                                          backend="sim", device_name="scripted operator"))
        self.recorder = recorder
        self.machine = machine
        self.operator = operator
        self.link = link
        self.period = 1.0 / rate_hz
        self.phase = ""
        self.guard = ThreadGuard("joystick/operator")
        # A periodic device that fell behind reports its current sticks, never a burst of stale ones.
        self._worker = Periodic("sim-operator", self.period, self._sample, late=Late.SKIP, guard=self.guard)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _sample(self, _index: int) -> None:
        blocked = self.link.state == LinkState.NEUTRALISED
        sticks = self.operator.sample(self.machine.state, commands_blocked=blocked)
        t_ns = now_ns()
        self.link.set_input(OperatorInput(sticks.axes, sticks.buttons, t_ns))
        self.joystick.put((t_ns, t_ns, sticks.axes, sticks.buttons))
        if sticks.phase != self.phase:
            self.phase = sticks.phase
            self.recorder.event("operator_phase", t_ns=t_ns, phase=self.phase)


def command_link_for(recorder: Recorder, mapper: CommandMapper, send: Callable[[can.Message], None],
                     config: CommandLinkConfig | None = None) -> CommandLink:
    """A command link that sends with `send` and records what it sends (/control) and its events."""
    control = recorder.add_stream(control_spec(mapper.profile.functions))
    layout = mapper.profile.cab_joysticks
    return CommandLink(
        config or CommandLinkConfig(rate_hz=layout.rate_hz if layout else 50.0), mapper, layout, send=send,
        on_command=lambda t_ns, values, enabled: control.put((t_ns, values, enabled)),
        on_event=lambda kind, t_ns, detail: recorder.event(kind, t_ns=t_ns, **detail),
    )


def run_sim_session(options: SimSessionOptions, stop: threading.Event | None = None,
                    on_started: Callable[[Recorder], None] | None = None) -> Path:
    """Record one episode; ends after `duration_s` or when `stop` is set. Returns the episode path."""
    stop = stop or threading.Event()
    profile = load_profile(options.profile)
    mapper = CommandMapper(profile, options.pattern)
    metadata = EpisodeMetadata(
        machine_kind=profile.kind, machine_model=profile.model, machine_id=options.machine_id,
        control_pattern=mapper.pattern.name, operator_id=options.operator_id,
        certification=options.certification, site=options.site, task=options.task, notes=options.notes,
        profile=profile.name,
    )
    if profile.cab_joysticks is None:
        raise ConfigError(f"{profile.source}: the simulated machine needs a cab_joysticks section")
    if profile.kind != SIMULATED_MACHINE_KIND:
        raise ConfigError(f"{profile.source}: the simulated machine is an {SIMULATED_MACHINE_KIND}, not a "
                          f"{profile.kind}")
    channel = f"excap-sim-{uuid.uuid4().hex[:12]}"
    machine_bus = can.Bus(interface="virtual", channel=channel)
    capture_bus = can.Bus(interface="virtual", channel=channel)  # also sends the commands: every bus is read
    recorder = Recorder(RecorderConfig(options.out_dir), metadata)
    try:
        with recorder:
            machine = SimulatedExcavator(machine_bus, profile.dbc_paths[0], seed=options.seed)
            can_capture = CanCapture(recorder, "can0", capture_bus, FrameDecoder(profile.dbc_paths),
                                     interface="virtual")
            link = command_link_for(recorder, mapper, can_capture.send, CommandLinkConfig(
                rate_hz=profile.cab_joysticks.rate_hz, stale_timeout_s=options.stale_timeout_s))
            operator = ScriptedOperator(mapper, seed=options.seed)
            control = _OperatorLoop(recorder, machine, operator, link, options.joystick_rate_hz)
            encoders: list[JpegEncoder] = []
            cameras: list[SimulatedCamera] = []
            for index in range(options.cameras):
                name = camera_name(index)
                handle = recorder.add_stream(camera_spec(name, options.width, options.height, options.fps,
                                                         source=f"sim:{view_for_camera(index)}"))
                encoder = JpegEncoder(recorder, handle, options.jpeg_quality)
                encoders.append(encoder)
                cameras.append(SimulatedCamera(name, view_for_camera(index), lambda: machine.state,
                                               encoder.submit, options.width, options.height, options.fps,
                                               seed=options.seed + index))
            watch_faults(control.guard, recorder.event, link)
            for guard in (machine.guard, can_capture.guard, *(c.guard for c in cameras), *(e.guard for e in encoders)):
                watch_faults(guard, recorder.event)
            can_capture.start()
            machine.start()
            for encoder in encoders:
                encoder.start()
            for camera in cameras:
                camera.start()
            link.start()
            control.start()
            if on_started is not None:
                on_started(recorder)
            try:
                wait_until(lambda: recorder.fault, stop, options.duration_s)  # or the recorder failed
            finally:
                control.stop()
                link.stop()
                for camera in cameras:
                    camera.stop()
                for encoder in encoders:
                    encoder.stop()
                machine.stop()
                can_capture.stop()
    finally:
        for bus in (machine_bus, capture_bus):
            bus.shutdown()
    return recorder.paths.final
