"""An operator station's devices, open for as long as the station runs, with episodes on demand.

`StationRuntime(config)` opens every device of a station config once: the CAN buses (captured and
decoded), the simulated machine if configured, the command link (commands flow, and are sent on the
command bus, whether or not an episode is recorded), the joysticks and the cameras with their JPEG
encoders. Consumers read live state (latest joystick samples, command, driver health, latest JPEG
per camera, CAN rates, decoded signals) or subscribe to joystick samples, commands, camera frames
and events; callbacks run on driver threads and must not block.

`start_episode()` attaches a new recorder to every stream (see `excap.record.switch`: rows
between episodes are not recorded, drivers never block on the switch, and nothing captured within
an episode's span is lost to it), `stop_episode()` finalizes it, `discard_episode()` deletes it.

A device whose worker thread dies is never silent: its fault is a `fault` event (device and error),
its health turns `failed`, and a joystick feeding the command path neutralises the commands at once
(see `excap.station.devices.watch_faults`). A device that goes disconnected, silent or bus-off and comes back is a
`fault` and a `fault_cleared` event (`excap.station.device_watch`).

Over 400 lines on purpose: one class whose device opening, live state, subscribers and episode switching share
the same device handles; the pieces with a job of their own are elsewhere (devices, inputs, health, switch, and
the records consumers see in `excap.station.live_state`, re-exported here).
"""

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

from excap.core.clock import now_ns
from excap.core.errors import EpisodeError
from excap.core.step_timer import StepTimer
from excap.drivers.base import DeviceFault, Health, ThreadGuard
from excap.drivers.camera.opencv_camera import CameraConfig, OpenCvCamera
from excap.drivers.camera.shm_camera import SharedMemoryCamera, is_shm_source
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, LinkState
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.sim.camera_source import SimulatedCamera
from excap.drivers.sim.machine import SimulatedMachine
from excap.drivers.sim.scripted_joystick import ScriptedJoystick
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, control_spec, joystick_spec
from excap.record.can_capture import CanCapture
from excap.record.jpeg import JpegEncoder
from excap.record.recorder import Recorder
from excap.record.switch import EpisodeResult, EpisodeSwitch, TeeStream
from excap.station.config import SIM_CAMERA_PREFIX, JoystickEntry, StationConfig, is_sim_camera
from excap.station.device_watch import DeviceWatch
from excap.station.devices import DeferredFrames, HealthSupervisor, open_joystick, watch_faults
from excap.station.inputs import StationInputs
from excap.station.joystick_types import JoystickContext
from excap.station.live_state import (
    CameraFrame,
    CommandListener,
    CommandState,
    EventListener,
    FrameListener,
    JoystickListener,
    SignalValue,
    StreamState,
    Subscription,
)

log = logging.getLogger(__name__)

SIM_CAMERA_DEFAULTS = (640, 480, 30.0)  # width, height, fps of a `sim:<view>` camera that sets none

__all__ = ["SIM_CAMERA_DEFAULTS", "CameraFrame", "CommandListener", "CommandState", "EventListener", "FrameListener",
           "JoystickListener", "SignalValue", "StationRuntime", "StreamState", "Subscription", "episode_metadata"]


def episode_metadata(config: StationConfig, mapper: CommandMapper, overrides: dict[str, str]) -> EpisodeMetadata:
    """Metadata of the config's machine and session; non-empty `overrides` (operator, task, ...) win.

    `certification` is taken from `overrides` only: it is the outcome of the registry check
    (`excap.station.certification.start_certified`), never the session's free text."""
    session = {**config.session, **{k: v for k, v in overrides.items() if v}}
    return EpisodeMetadata(
        machine_kind=config.profile.kind, machine_model=config.profile.model, machine_id=config.machine_id,
        control_pattern=mapper.pattern.name, operator_id=session.get("operator", "anonymous"),
        certification=overrides.get("certification", ""), site=session.get("site", ""),
        task=session.get("task", ""), notes=session.get("notes", ""), profile=config.profile.name)


class StationRuntime:
    """Every device of a station config, open from `open()` to `close()`; episodes in between."""

    def __init__(self, config: StationConfig, seed: int = 0, jpeg_quality: int = 90) -> None:
        self.config = config
        self.seed = seed
        self.jpeg_quality = jpeg_quality
        self.profile = config.profile
        self.mapper = CommandMapper(config.profile, config.pattern)
        self.switch = EpisodeSwitch(config.out_dir)
        self.switch.on_event.append(self._on_event)
        self.switch.on_stream.append(self._watch_stream)
        self.switch.flush.append(self._flush)
        self.switch.on_start.append(self._on_episode_start)
        self.control = self.switch.stream(control_spec(self.profile.functions))
        self.captures: dict[str, CanCapture] = {}
        self.machine: SimulatedMachine | None = None
        self.link: CommandLink | None = None
        self.joystick_drivers: dict[str, Any] = {}
        self.cameras: dict[str, OpenCvCamera | SharedMemoryCamera | SimulatedCamera] = {}
        self.encoders: dict[str, JpegEncoder] = {}
        self.markers = 0
        self._subscriptions: tuple[Subscription, ...] = ()
        self._sub_lock = threading.Lock()
        self._joysticks: dict[str, JoystickSample] = {}
        self._command: CommandState | None = None
        self._frames: dict[str, CameraFrame] = {}
        self._decoded: dict[str, tuple[TeeStream, tuple[Any, ...]]] = {}
        self._running: list[Any] = []  # things with stop() or close(), in start order
        self._buses: list[can.BusABC] = []
        self._guards: list[ThreadGuard] = []
        self._open = False
        self.opened_at: float | None = None  # time.monotonic() when the devices were opened
        self.device_watch: DeviceWatch | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> "StationRuntime":
        return self.open()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(reason="exception", outcome="aborted")

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def drives_commands(self) -> bool:
        """The station produces /control itself (joysticks through the command link)."""
        return bool(self.config.joysticks) or self.config.command.bus is not None

    def open(self) -> "StationRuntime":
        """Open and start every device; on failure, whatever was started is stopped again."""
        if self._open:
            raise EpisodeError("station runtime already open")
        try:
            self._open_devices()
        except BaseException:
            self._stop_devices()
            raise
        self._open = True
        self.opened_at = time.monotonic()
        return self

    def close(self, reason: str = "shutdown", outcome: str | None = None) -> Path | None:
        """Stop every device, then finish a running episode (so it holds the last, neutral commands).

        Returns the finished episode's path, if one was running.
        """
        recorder = self.switch.recorder
        self._stop_devices(recorder.stop_steps if recorder is not None else None)
        self._open = False
        if self.switch.recording:
            return self.switch.stop(reason=reason, outcome=outcome).path
        return None

    def _open_devices(self) -> None:
        config, profile = self.config, self.profile
        event = self.switch.event
        for bus_config in config.cans:
            dbcs = [bus_config.dbc] if bus_config.dbc else profile.dbc_paths
            capture = CanCapture.from_config(self.switch, bus_config, FrameDecoder(dbcs))
            self._watch(capture.guard)
            self.captures[bus_config.name] = capture
        if config.simulated_machine:
            virtual = next(c for c in config.cans if c.interface == "virtual")
            machine_bus = can.Bus(interface="virtual", channel=virtual.channel)
            self._buses.append(machine_bus)
            # The machine of the profile's kind; the profile lists the machine's own DBC first.
            self.machine = SimulatedMachine(machine_bus, profile.dbc_paths[0], seed=self.seed, kind=profile.kind)
            self._watch(self.machine.guard)
        if self.drives_commands:
            command_capture = self.captures.get(config.command.bus) if config.command.bus else None
            rate = config.command.rate_hz or (profile.cab_joysticks.rate_hz if profile.cab_joysticks else 50.0)
            self.link = CommandLink(
                CommandLinkConfig(rate_hz=rate, stale_timeout_s=config.command.stale_timeout_s,
                                  send_on_change=config.command.send_on_change), self.mapper,
                profile.cab_joysticks, send=command_capture.send if command_capture else None,
                on_command=self._on_command,
                on_event=lambda kind, t_ns, detail: self.switch.event(kind, t_ns=t_ns, **detail))
        inputs = StationInputs(profile, config.axis_inputs, config.button_inputs,
                               {j.name for j in config.joysticks if j.periodic})
        for entry in config.joysticks:
            callback = self._joystick_callback(entry, inputs)
            joystick_bus = self.captures.get(entry.bus) if entry.bus else None
            context = JoystickContext(listen=joystick_bus.add_listener if joystick_bus else None, machine=self.machine,
                                      mapper=self.mapper, seed=self.seed, event=event,
                                      commands_blocked=self._commands_blocked if entry.name in inputs.devices else None)
            driver = open_joystick(entry, callback, context)
            self._watch(driver.guard, self.link if entry.name in inputs.devices else None)
            self.joystick_drivers[entry.name] = driver

        for capture in self.captures.values():
            capture.start()
            self._running.append(capture)
        if self.machine is not None:
            self.machine.start()
            self._running.append(self.machine)
        if self.link is not None:
            self.link.start()
            self._running.append(self.link)
        for driver in self.joystick_drivers.values():
            driver.open()
            self._running.append(driver)
        for index, camera_config in enumerate(config.cameras):
            if is_sim_camera(camera_config):
                self._open_sim_camera(camera_config, index)
            else:
                self._open_camera(camera_config)
        supervisor = HealthSupervisor(event, self.link, self.joystick_drivers, inputs.devices)
        self._watch(supervisor.guard, self.link)
        supervisor.start()
        self._running.append(supervisor)
        watch = self.device_watch = DeviceWatch(self, event)
        self._watch(watch.guard)
        watch.start()
        self._running.append(watch)

    def _commands_blocked(self) -> bool:
        """The command link holds the commands neutral until re-enabled from neutral (what an operator sees)."""
        return self.link is not None and self.link.state == LinkState.NEUTRALISED

    def _watch(self, guard: ThreadGuard, link: CommandLink | None = None) -> None:
        """A device's faults become `fault` events (and, with `link`, neutral commands first)."""
        self._guards.append(guard)
        watch_faults(guard, self.switch.event, link)

    def faults(self) -> list[DeviceFault]:
        """The faults of every device (and of the command link) so far."""
        guards = [*self._guards, *([self.link.guard] if self.link is not None else [])]
        return [guard.fault for guard in guards if guard.fault is not None]

    def _stop_devices(self, timer: StepTimer | None = None) -> None:
        """Stop every device, the last started first; `timer` times each kind of device (`devices/<kind>`).

        The cameras started one after the other stop together (each waits for the frame it is reading), then
        their encoders together (each encodes what its camera delivered): a camera always before its encoder.
        """
        timer = timer or StepTimer()
        while self._running:
            run = [self._running.pop()]  # one device, or the cameras and encoders started in a row
            while self._is_camera_or_encoder(run[0]) and self._running and self._is_camera_or_encoder(
                    self._running[-1]):
                run.append(self._running.pop())
            sources = [item for item in run if not isinstance(item, JpegEncoder)]
            encoders = [item for item in run if isinstance(item, JpegEncoder)]
            for together in (sources, encoders):
                if together:
                    with timer.step(f"devices/{type(together[0]).__name__}"):
                        _stop_together(together)
        with timer.step("devices/buses"):
            while self._buses:
                self._buses.pop().shutdown()

    def _is_camera_or_encoder(self, item: object) -> bool:
        return isinstance(item, JpegEncoder) or any(item is camera for camera in self.cameras.values())

    # -- devices ----------------------------------------------------------------------------------

    def _joystick_callback(self, entry: JoystickEntry, inputs: StationInputs) -> Callable[[JoystickSample], None]:
        """Record the device's (calibrated) sample, feed the command link, then tell subscribers."""
        stream = self.switch.stream(joystick_spec(entry.name, entry.axes, entry.buttons, backend=entry.type,
                                                  device_name=str(entry.options.get("device", entry.name))))
        link = self.link

        def on_sample(sample: JoystickSample) -> None:
            stream.put((sample.t_ns, sample.t_device_ns, sample.axes, sample.buttons))
            composed = inputs.update(sample)
            if composed is not None and link is not None:
                link.set_input(composed)
            self._joysticks[sample.device] = sample
            for subscription in self._subscriptions:
                subscription._call(subscription.joystick, sample)

        if entry.calibration is None:
            return on_sample
        from excap.drivers.joystick.calibration import calibrated, load_calibration

        return calibrated(on_sample, load_calibration(entry.calibration), entry.axes)

    def _camera_stream(self, name: str, width: int, height: int, fps: float, source: str) -> JpegEncoder:
        tee = self.switch.stream(camera_spec(name, width, height, fps, source=source))
        tee.listeners.append(functools.partial(self._on_frame, name))
        encoder = JpegEncoder(self.switch, tee, self.jpeg_quality)
        self._watch(encoder.guard)
        encoder.start()
        self.encoders[name] = encoder
        return encoder

    def _open_camera(self, camera_config: CameraConfig) -> None:
        sink = DeferredFrames()
        driver = SharedMemoryCamera if is_shm_source(camera_config.source) else OpenCvCamera
        camera = driver(camera_config, sink, on_event=lambda kind, detail: self.switch.event(kind, **detail))
        self._watch(camera.guard)
        camera.open(wait_for_source=True)
        self.cameras[camera_config.name] = camera
        self._running.append(camera)
        info = camera.info
        encoder = self._camera_stream(camera_config.name, info.width if info else camera_config.width,
                                      info.height if info else camera_config.height,
                                      info.fps if info else camera_config.fps, str(camera_config.source))
        self._running.insert(len(self._running) - 1, encoder)  # stopped after its camera
        sink.target = encoder.submit

    def _open_sim_camera(self, camera_config: CameraConfig, index: int) -> None:
        machine = self.machine
        assert machine is not None, "a simulated camera needs the simulated machine"
        view = str(camera_config.source)[len(SIM_CAMERA_PREFIX):]
        default_width, default_height, default_fps = SIM_CAMERA_DEFAULTS
        width = camera_config.width or default_width
        height = camera_config.height or default_height
        fps = camera_config.fps or default_fps
        encoder = self._camera_stream(camera_config.name, width, height, fps, str(camera_config.source))
        self._running.append(encoder)
        camera = SimulatedCamera(camera_config.name, view, lambda: machine.state, encoder.submit, width, height, fps,
                                 seed=self.seed + index, kind=machine.kind.kind)
        self._watch(camera.guard)
        camera.start()
        self.cameras[camera_config.name] = camera
        self._running.append(camera)

    # -- live state -------------------------------------------------------------------------------

    def joystick_samples(self) -> dict[str, JoystickSample]:
        """The latest (calibrated) sample of every joystick device that has reported."""
        return dict(self._joysticks)

    @property
    def command(self) -> CommandState | None:
        """The latest command the link produced (None before the first, or without a command link)."""
        return self._command

    @property
    def machine_state(self) -> Any:
        """The simulated machine's state (ExcavatorState, WheelLoaderState, ...), if the station drives one."""
        return self.machine.state if self.machine is not None else None

    def health(self) -> dict[str, Health]:
        """Driver health per device: `joystick/<name>`, `can/<name>`, `camera/<name>`, `machine`, `command_link`.

        `failed`: the device's worker thread died (its `fault` event says why); a camera whose encoder died
        is failed too.
        """
        health: dict[str, Health] = {}
        for name, driver in self.joystick_drivers.items():
            health[f"joystick/{name}"] = Health(driver.health)
        for name, capture in self.captures.items():
            health[f"can/{name}"] = capture.health
        for name, camera in self.cameras.items():
            encoder = self.encoders.get(name)
            failed = self._open and encoder is not None and encoder.guard.failed
            health[f"camera/{name}"] = Health.FAILED if failed else camera.health
        if self.machine is not None:
            health["machine"] = self.machine.health if self._open else Health.STOPPED
        if self.link is not None:
            failed = self.link.guard.failed
            health["command_link"] = (Health.FAILED if failed else Health.OK) if self._open else Health.STOPPED
        return health

    def latest_frame(self, camera: str) -> CameraFrame | None:
        return self._frames.get(camera)

    def latest_frames(self) -> dict[str, CameraFrame]:
        return dict(self._frames)

    def can_rates(self) -> dict[str, float]:
        """Frames per second on each CAN bus (over the last second or so)."""
        t_ns = now_ns()
        return {name: tee.update_rate(t_ns) for tee in self.switch.streams()
                for name in self.captures if tee.spec.path == f"can/{name}"}

    def decoded(self, channel: str | None = None) -> dict[str, dict[str, SignalValue]]:
        """Latest decoded values per message, keyed `<channel>/<Message>` -> signal -> value."""
        result: dict[str, dict[str, SignalValue]] = {}
        for key, (tee, row) in list(self._decoded.items()):
            if channel is not None and not key.startswith(f"{channel}/"):
                continue
            result[key] = {column.name: SignalValue(row[0], float(value), str(column.attrs.get("unit", "")))
                           for column, value in zip(tee.spec.columns[2:], row[2:], strict=False)}
        return result

    def signal(self, channel: str, message: str, signal: str) -> SignalValue | None:
        """The latest value of one decoded signal, e.g. `signal("can0", "EEC1", "EngSpeed")`."""
        entry = self._decoded.get(f"{channel}/{message}")
        if entry is None:
            return None
        tee, row = entry
        names = [c.name for c in tee.spec.columns]
        if signal not in names[2:]:
            return None
        index = names.index(signal)
        return SignalValue(row[0], float(row[index]), str(tee.spec.columns[index].attrs.get("unit", "")))

    def stream_status(self) -> list[StreamState]:
        t_ns = now_ns()
        return [StreamState(tee.spec.path, tee.update_rate(t_ns), tee.count, tee.dropped, tee.staleness_s(t_ns),
                            tee.recording) for tee in self._with_encoder_drops()]

    def dropped(self) -> int:
        """Samples dropped so far on every stream: the running episode's queues, the encoders, rejected messages."""
        return sum(tee.dropped for tee in self._with_encoder_drops())

    def _with_encoder_drops(self) -> list[TeeStream]:
        for encoder in self.encoders.values():
            if isinstance(encoder.handle, TeeStream):
                encoder.handle.extra_drops = encoder.dropped
        return self.switch.streams()

    # -- subscribers ------------------------------------------------------------------------------

    def subscribe(self, joystick: JoystickListener | None = None, command: CommandListener | None = None,
                  frame: FrameListener | None = None, event: EventListener | None = None) -> Subscription:
        """Callbacks for joystick samples, commands, encoded camera frames and events (driver threads)."""
        subscription = Subscription(joystick, command, frame, event, _cancel=self._unsubscribe)
        with self._sub_lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._sub_lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def _on_command(self, t_ns: int, values: tuple[float, ...], enabled: bool) -> None:
        self.control.put((t_ns, values, enabled))
        link = self.link
        state = CommandState(t_ns, tuple(values), enabled, link.state.value if link else "", link.fault if link else "")
        self._command = state
        for subscription in self._subscriptions:
            subscription._call(subscription.command, state)

    def _on_frame(self, camera: str, row: tuple[Any, ...]) -> None:
        frame = CameraFrame(camera, row[0], row[1], row[2])
        self._frames[camera] = frame
        for subscription in self._subscriptions:
            subscription._call(subscription.frame, frame)

    def _on_event(self, kind: str, t_ns: int, detail: dict[str, Any]) -> None:
        for subscription in self._subscriptions:
            subscription._call(subscription.event, kind, t_ns, detail)

    def _watch_stream(self, tee: TeeStream) -> None:
        """Keep the latest row of every decoded CAN message, for live machine state."""
        parts = tee.spec.path.split("/")
        if len(parts) == 4 and parts[0] == "can" and parts[2] == "decoded":
            key = f"{parts[1]}/{parts[3]}"
            tee.listeners.append(lambda row: self._decoded.__setitem__(key, (tee, row)))

    # -- episodes ---------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.switch.recording

    @property
    def recorder(self) -> Recorder | None:
        return self.switch.recorder

    @property
    def last(self) -> EpisodeResult | None:
        """The previous episode (finished or discarded)."""
        return self.switch.last

    def start_episode(self, overrides: dict[str, str] | None = None) -> Recorder:
        """Start recording every stream; metadata from the config's session, non-empty `overrides` win."""
        if not self._open:
            raise EpisodeError("the station's devices are not open")
        return self.switch.start(episode_metadata(self.config, self.mapper, overrides or {}))

    def stop_episode(self, outcome: str | None = None, reason: str = "stop") -> Path:
        """Finish the running episode; returns its path."""
        path = self.switch.stop(reason=reason, outcome=outcome).path
        assert path is not None
        return path

    def discard_episode(self, reason: str = "discard") -> EpisodeResult:
        """Stop the running episode and delete its file."""
        return self.switch.stop(reason=reason, discard=True)

    def set_outcome(self, outcome: str) -> None:
        self.switch.set_outcome(outcome)

    def mark(self, label: str = "") -> int:
        """Add a `marker` event (detail: index, text) to the running episode; returns the marker's index."""
        if not self.switch.recording:
            raise EpisodeError("not recording")
        self.markers += 1
        self.switch.event("marker", index=self.markers, text=label)
        return self.markers

    def _flush(self) -> None:
        for encoder in self.encoders.values():
            encoder.flush()
        for capture in self.captures.values():
            capture.flush()

    def _on_episode_start(self, recorder: Recorder) -> None:
        for fault in self.faults():  # a device that failed before this episode is still failed
            recorder.event("fault", **fault.detail(), before_start=True)
        if self.device_watch is not None:
            self.device_watch.on_episode_start(recorder)
        for driver in self.joystick_drivers.values():
            if isinstance(driver, ScriptedJoystick) and driver.phase:
                recorder.event("operator_phase", device=driver.name, phase=driver.phase)


def _stop_device(item: Any) -> None:
    try:
        (item.stop if hasattr(item, "stop") else item.close)()
    except Exception:
        log.exception("stopping %s failed", type(item).__name__)


def _stop_together(items: list[Any]) -> None:
    """Stop `items` at the same time, each on its own thread (the last on this one); returns when all stopped."""
    threads = [threading.Thread(target=_stop_device, args=(item,), name=f"excap-stop-{type(item).__name__}")
               for item in items[:-1]]
    for thread in threads:
        thread.start()
    _stop_device(items[-1])
    for thread in threads:
        thread.join()
