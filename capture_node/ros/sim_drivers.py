"""The simulated excavator and scripted operator, running for as long as the node runs.

Same wiring as `capture_node.sim_session` (operator sticks -> command link -> BJM1 frames on a
python-can `virtual` bus -> simulated machine), but the drivers write to `EpisodeSwitch` streams, so
they keep running (and are published on ROS topics) between episodes; the machine's CAN bus is
captured while an episode runs.
"""

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import can

from capture_node.camera_capture import JpegEncoder
from capture_node.can_capture import CanCapture
from capture_node.clock import now_ns
from capture_node.episode import EpisodeMetadata
from capture_node.errors import ConfigError
from capture_node.recorder import Recorder
from capture_node.ros.episodes import EpisodeSwitch, TeeStream
from capture_node.sim_session import SimSessionOptions
from capture_node.streams import camera_spec, control_spec, joystick_spec
from drivers.can.decoder import FrameDecoder
from drivers.command_link import CommandLink, CommandLinkConfig, OperatorInput
from drivers.mapping import CommandMapper
from drivers.profiles import load_profile
from drivers.sim.camera_source import SimulatedCamera
from drivers.sim.cameras import camera_name, view_for_camera
from drivers.sim.excavator import ExcavatorState
from drivers.sim.machine import SimulatedExcavator
from drivers.sim.operator import ScriptedOperator


@dataclass
class SimListeners:
    """Called from driver threads; must not block (publishing a ROS message is fine)."""

    joy: Callable[[int, list[float], list[int]], None] | None = None
    command: Callable[[int, tuple[float, ...], bool], None] | None = None
    frame: Callable[[str, int, bytes], None] | None = None


class SimDrivers:
    def __init__(self, switch: EpisodeSwitch, options: SimSessionOptions, listeners: SimListeners) -> None:
        self.switch = switch
        self.options = options
        self.listeners = listeners
        profile = load_profile(options.profile)
        if profile.cab_joysticks is None:
            raise ConfigError(f"{profile.source}: the simulated machine needs a cab_joysticks section")
        self.profile = profile
        self.mapper = CommandMapper(profile, options.pattern)
        self.operator = ScriptedOperator(self.mapper, seed=options.seed)
        self._channel = f"excap-ros-sim-{uuid.uuid4().hex[:12]}"
        self._machine_bus = can.Bus(interface="virtual", channel=self._channel)
        self._station_bus = can.Bus(interface="virtual", channel=self._channel)
        self.machine = SimulatedExcavator(self._machine_bus, profile.dbc_paths[0], seed=options.seed,
                                          cab_joysticks=profile.cab_joysticks)
        self.joystick = switch.stream(joystick_spec("operator", profile.axes, profile.buttons, backend="sim",
                                                    device_name="scripted operator"))
        self.control = switch.stream(control_spec(profile.functions))
        layout = profile.cab_joysticks
        self.link = CommandLink(CommandLinkConfig(rate_hz=layout.rate_hz), self.mapper, layout,
                                send=self._station_bus.send, on_command=self._on_command,
                                on_event=lambda kind, t_ns, detail: switch.event(kind, t_ns=t_ns, **detail))
        self.encoders: list[JpegEncoder] = []
        self.cameras: list[SimulatedCamera] = []
        for index in range(options.cameras):
            name = camera_name(index)
            tee = switch.stream(camera_spec(name, options.width, options.height, options.fps,
                                            source=f"sim:{view_for_camera(index)}"))
            if listeners.frame is not None:
                tee.listeners.append(lambda row, name=name: listeners.frame(name, row[0], row[2]))  # type: ignore[misc]
            encoder = JpegEncoder(switch, tee, options.jpeg_quality)  # type: ignore[arg-type]
            self.encoders.append(encoder)
            self.cameras.append(SimulatedCamera(name, view_for_camera(index), lambda: self.machine.state,
                                                encoder.submit, options.width, options.height, options.fps,
                                                seed=options.seed + index))
        self._can: CanCapture | None = None
        self._can_bus: can.BusABC | None = None
        self._decoder = FrameDecoder(profile.dbc_paths)
        switch.on_start.append(self._attach_can)
        switch.on_start.append(lambda recorder: recorder.event("operator_phase", phase=self.phase))
        switch.on_stop.append(self._detach_can)
        self.phase = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_operator, name="sim-operator", daemon=True)

    def metadata(self, **overrides: str) -> EpisodeMetadata:
        o = self.options
        fields = dict(machine_kind=self.profile.kind, machine_model=self.profile.model, machine_id=o.machine_id,
                      control_pattern=self.mapper.pattern.name, operator_id=o.operator_id,
                      certification=o.certification, site=o.site, task=o.task, notes=o.notes,
                      profile=self.profile.name)
        return EpisodeMetadata(**(fields | overrides))

    @property
    def state(self) -> ExcavatorState:
        return self.machine.state

    def encoder_drops(self) -> None:
        for encoder in self.encoders:
            tee = encoder.handle
            if isinstance(tee, TeeStream):
                tee.extra_drops = encoder.dropped

    def start(self) -> None:
        self.machine.start()
        for encoder in self.encoders:
            encoder.start()
        for camera in self.cameras:
            camera.start()
        self.link.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.link.stop()
        for camera in self.cameras:
            camera.stop()
        for encoder in self.encoders:
            encoder.stop()
        self.machine.stop()
        for bus in (self._machine_bus, self._station_bus):
            bus.shutdown()

    # -- episode hooks ------------------------------------------------------------------------

    def _attach_can(self, recorder: Recorder) -> None:
        self._can_bus = can.Bus(interface="virtual", channel=self._channel)
        self._can = CanCapture(recorder, "can0", self._can_bus, self._decoder, interface="virtual")
        self._can.start()

    def _detach_can(self, _recorder: Recorder) -> None:
        if self._can is not None:
            self._can.stop()
            self._can = None
        if self._can_bus is not None:
            self._can_bus.shutdown()
            self._can_bus = None

    # -- driver threads -----------------------------------------------------------------------

    def _on_command(self, t_ns: int, values: tuple[float, ...], enabled: bool) -> None:
        self.control.put((t_ns, values, enabled))
        if self.listeners.command is not None:
            self.listeners.command(t_ns, values, enabled)

    def _run_operator(self) -> None:
        period = 1.0 / self.options.joystick_rate_hz
        start = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            delay = start + tick * period - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            sticks = self.operator.sample(self.machine.state)
            t_ns = now_ns()
            self.link.set_input(OperatorInput(sticks.axes, sticks.buttons, t_ns))
            self.joystick.put((t_ns, t_ns, sticks.axes, sticks.buttons))
            if self.listeners.joy is not None:
                self.listeners.joy(t_ns, list(sticks.axes), list(sticks.buttons))
            if sticks.phase != self.phase:
                self.phase = sticks.phase
                self.switch.event("operator_phase", t_ns=t_ns, phase=self.phase)
            tick += 1
