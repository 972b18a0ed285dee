"""A recording session at an operator station, built from a station config file.

Joystick drivers -> (calibration) -> /joystick/<device> and the station inputs -> command link
(-> cab-joystick frames on the command bus) -> /control; every CAN bus -> /can/<name> (+ decoded);
every camera -> JPEG encoder -> /cameras/<name>. With `machine.simulated`, the simulated machine
joins the virtual bus and answers the commands, for dry runs of a whole station.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

from capture_node.camera_capture import JpegEncoder
from capture_node.can_capture import CanCapture
from capture_node.clock import now_ns
from capture_node.episode import EpisodeMetadata
from capture_node.recorder import Recorder, RecorderConfig, StreamHandle
from capture_node.station_config import JoystickEntry, StationConfig
from capture_node.station_inputs import StationInputs
from capture_node.streams import camera_spec, control_spec, joystick_spec
from drivers.base import Health
from drivers.camera.opencv_camera import OpenCvCamera
from drivers.can.decoder import FrameDecoder
from drivers.command_link import CommandLink, CommandLinkConfig
from drivers.joystick.base import JoystickSample, SampleCallback
from drivers.mapping import CommandMapper
from drivers.sim.machine import SimulatedExcavator
from drivers.sim.operator import ScriptedOperator

log = logging.getLogger(__name__)


class _ScriptedJoystick:
    """The scripted operator as a periodic joystick device (type: sim), for dry runs."""

    def __init__(self, name: str, operator: ScriptedOperator, machine: SimulatedExcavator, on_sample: SampleCallback,
                 rate_hz: float = 100.0) -> None:
        self.name = name
        self.operator = operator
        self.machine = machine
        self.on_sample = on_sample
        self.period = 1.0 / rate_hz
        self.health = Health.STOPPED
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sim-joystick-{name}", daemon=True)

    def open(self) -> None:
        self.health = Health.OK
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.health = Health.STOPPED

    def _run(self) -> None:
        start = time.monotonic()
        tick = 0
        while not self._stop.is_set():
            delay = start + tick * self.period - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            sticks = self.operator.sample(self.machine.state)
            t_ns = now_ns()
            self.on_sample(JoystickSample(self.name, t_ns, t_ns, sticks.axes, sticks.buttons))
            tick += 1


class _DeferredFrames:
    """Frames go nowhere until the camera's real size is known and its encoder exists."""

    def __init__(self) -> None:
        self.target: Callable[[int, int, Any], None] | None = None
        self.early = 0

    def __call__(self, t_ns: int, t_device_ns: int, image: Any) -> None:
        if self.target is None:
            self.early += 1
            return
        self.target(t_ns, t_device_ns, image)


def _metadata(config: StationConfig, mapper: CommandMapper, overrides: dict[str, str]) -> EpisodeMetadata:
    session = {**config.session, **{k: v for k, v in overrides.items() if v}}
    return EpisodeMetadata(
        machine_kind=config.profile.kind, machine_model=config.profile.model, machine_id=config.machine_id,
        control_pattern=mapper.pattern.name, operator_id=session.get("operator", "anonymous"),
        certification=session.get("certification", ""), site=session.get("site", ""),
        task=session.get("task", ""), notes=session.get("notes", ""), profile=config.profile.name)


def _joystick_callback(entry: JoystickEntry, stream: StreamHandle, inputs: StationInputs,
                       link: CommandLink) -> SampleCallback:
    """Record the device's (calibrated) sample and feed the composed input to the command link."""

    def on_sample(sample: JoystickSample) -> None:
        stream.put((sample.t_ns, sample.t_device_ns, sample.axes, sample.buttons))
        composed = inputs.update(sample)
        if composed is not None:
            link.set_input(composed)

    if entry.calibration is None:
        return on_sample
    from drivers.joystick.calibration import calibrated, load_calibration

    return calibrated(on_sample, load_calibration(entry.calibration), entry.axes)


def _open_joystick(entry: JoystickEntry, on_sample: SampleCallback, captures: dict[str, CanCapture],
                   machine: SimulatedExcavator | None, mapper: CommandMapper, seed: int) -> Any:
    def tagged(sample: JoystickSample) -> None:
        on_sample(JoystickSample(entry.name, sample.t_ns, sample.t_device_ns, sample.axes, sample.buttons))

    if entry.type == "hid":
        from drivers.joystick.hid_joystick import HidJoystick, HidJoystickConfig

        return HidJoystick(HidJoystickConfig(**{"name": entry.name, **entry.options, "axes": entry.axes,
                                                "buttons": entry.buttons}), tagged)
    if entry.type == "serial":
        from drivers.joystick.serial_joystick import SerialJoystick, SerialJoystickConfig

        return SerialJoystick(SerialJoystickConfig(**{"device": entry.name, **entry.options}), tagged)
    if entry.type == "j1939":
        from drivers.joystick.j1939_joystick import J1939Joystick, J1939JoystickConfig

        driver = J1939Joystick(J1939JoystickConfig(name=entry.name, **entry.options), tagged)
        assert entry.bus is not None
        captures[entry.bus].add_listener(driver.listener())
        return driver
    if machine is None:
        raise ValueError(f"joystick {entry.name}: type sim needs machine.simulated: true")
    return _ScriptedJoystick(entry.name, ScriptedOperator(mapper, seed=seed), machine, tagged)


def run_station_session(config: StationConfig, stop: threading.Event | None = None,
                        duration_s: float | None = None, on_started: Callable[[Recorder], None] | None = None,
                        overrides: dict[str, str] | None = None, seed: int = 0) -> Path:
    """Record one episode with the station's devices; returns the finished episode's path."""
    stop = stop or threading.Event()
    profile = config.profile
    mapper = CommandMapper(profile, config.pattern)
    recorder = Recorder(RecorderConfig(config.out_dir), _metadata(config, mapper, overrides or {}))
    started: list[Any] = []  # things with close()/stop(), in start order
    with recorder:
        try:
            captures: dict[str, CanCapture] = {}
            for bus_config in config.cans:
                dbcs = [bus_config.dbc] if bus_config.dbc else profile.dbc_paths
                captures[bus_config.name] = CanCapture.from_config(recorder, bus_config, FrameDecoder(dbcs))
            machine = machine_bus = None
            if config.simulated_machine:
                virtual = next(c for c in config.cans if c.interface == "virtual")
                machine_bus = can.Bus(interface="virtual", channel=virtual.channel)
                machine = SimulatedExcavator(machine_bus, profile.dbc_paths[0], seed=seed,
                                             cab_joysticks=profile.cab_joysticks)
            control = recorder.add_stream(control_spec(profile.functions))
            command_capture = captures.get(config.command.bus) if config.command.bus else None
            rate = config.command.rate_hz or (profile.cab_joysticks.rate_hz if profile.cab_joysticks else 50.0)
            link = CommandLink(
                CommandLinkConfig(rate_hz=rate, stale_timeout_s=config.command.stale_timeout_s), mapper,
                profile.cab_joysticks, send=command_capture.send if command_capture else None,
                on_command=lambda t, values, enabled: control.put((t, values, enabled)),
                on_event=lambda kind, t, detail: recorder.event(kind, t_ns=t, **detail))
            inputs = StationInputs(profile, config.axis_inputs, config.button_inputs,
                                   {j.name for j in config.joysticks if j.periodic})
            joysticks = {}
            for entry in config.joysticks:
                stream = recorder.add_stream(joystick_spec(entry.name, entry.axes, entry.buttons, backend=entry.type,
                                                           device_name=str(entry.options.get("device",
                                                                                             entry.name))))
                callback = _joystick_callback(entry, stream, inputs, link)
                joysticks[entry.name] = _open_joystick(entry, callback, captures, machine, mapper, seed)
            cameras = []
            for camera_config in config.cameras:
                sink = _DeferredFrames()
                camera = OpenCvCamera(camera_config, sink,
                                      on_event=lambda kind, detail: recorder.event(kind, **detail))
                cameras.append((camera, sink, camera_config))

            for capture in captures.values():
                capture.start()
                started.append(capture)
            if machine is not None:
                machine.start()
                started.append(machine)
            link.start()
            started.append(link)
            for driver in joysticks.values():
                driver.open()
                started.append(driver)
            for camera, sink, camera_config in cameras:
                camera.open(wait_for_source=True)
                info = camera.info
                handle = recorder.add_stream(camera_spec(
                    camera_config.name, info.width if info else camera_config.width,
                    info.height if info else camera_config.height,
                    info.fps if info else camera_config.fps, source=str(camera_config.source)))
                encoder = JpegEncoder(recorder, handle)
                encoder.start()
                started.append(camera)
                started.append(encoder)
                sink.target = encoder.submit
            supervisor = _HealthSupervisor(recorder, link, joysticks, inputs.devices)
            supervisor.start()
            started.append(supervisor)
            if on_started is not None:
                on_started(recorder)
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while not recorder.fault:
                remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
                if remaining <= 0 or stop.wait(remaining):
                    break
        finally:
            for item in reversed(started):
                with contextlib.suppress(Exception):
                    (item.stop if hasattr(item, "stop") else item.close)()
            if machine_bus is not None:
                machine_bus.shutdown()
    return recorder.paths.final


class _HealthSupervisor:
    """Watches joystick health: a device that disconnects neutralises commands at once."""

    def __init__(self, recorder: Recorder, link: CommandLink, joysticks: dict[str, Any], bound: set[str],
                 interval_s: float = 0.005) -> None:
        self.recorder = recorder
        self.link = link
        self.joysticks = joysticks
        self.bound = bound
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="joystick-health", daemon=True)
        self._last: dict[str, Health] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for name, driver in self.joysticks.items():
                health = driver.health
                previous = self._last.get(name)
                self._last[name] = health
                if health == previous or previous is None:
                    continue
                if health == Health.DISCONNECTED:
                    self.recorder.event("joystick_lost", device=name)
                    if name in self.bound:
                        self.link.input_lost(f"joystick {name} disconnected")
                elif previous == Health.DISCONNECTED:
                    self.recorder.event("joystick_back", device=name)

