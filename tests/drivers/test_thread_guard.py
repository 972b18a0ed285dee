"""A dying worker thread is a fault, never silence: the guard, the command link and the device threads."""

import threading
import uuid
from pathlib import Path

import can
import numpy as np
import pytest

from excap.core.clock import now_ns
from excap.core.errors import ConfigError
from excap.drivers.base import DeviceFault, Health, ThreadGuard
from excap.drivers.joystick.j1939_joystick import J1939Joystick, J1939JoystickConfig
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, LinkState, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import load_profile
from excap.drivers.sim.camera_source import SimulatedCamera
from excap.drivers.sim.excavator import ExcavatorModel
from excap.drivers.sim.machine import DEFAULT_DBC, SimulatedExcavator
from excap.episode.streams import camera_spec
from excap.record.jpeg import JpegEncoder
from tests.support.waiting import wait_for

ENABLE = (1, 0, 0)
CENTRED = (0.0,) * 6
BOOM_UP = (0.0, 0.0, 0.0, -0.9, 0.0, 0.0)  # ISO: right stick pulled back


class Faults:
    """A fault listener that keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[DeviceFault] = []
        self.lock = threading.Lock()

    def __call__(self, fault: DeviceFault) -> None:
        with self.lock:
            self.heard.append(fault)


def test_an_exception_escaping_a_thread_is_the_devices_one_fault():
    guard = ThreadGuard("camera/cab")
    faults = Faults()
    guard.listen(faults)
    guard.listen(lambda fault: 1 / 0)  # a failing listener does not stop the others

    def body() -> None:
        raise ValueError("bad\nframe")

    thread = guard.thread(body, "camera-cab")
    thread.start()
    thread.join()
    assert [(f.device, f.error, f.thread) for f in faults.heard] == [("camera/cab", "ValueError: bad frame",
                                                                      "camera-cab")]
    guard.fail(RuntimeError("second"))
    assert len(faults.heard) == 1 and guard.fault == faults.heard[0]
    late = Faults()
    guard.listen(late)
    assert late.heard == faults.heard
    assert guard.fault.detail() == {"device": "camera/cab", "error": "ValueError: bad frame", "thread": "camera-cab"}


def test_a_body_that_returns_is_no_fault():
    guard = ThreadGuard("machine")
    thread = guard.thread(lambda: None, "t")
    thread.start()
    thread.join()
    assert not guard.failed and guard.fault is None


# -- the command link -------------------------------------------------------------------------------------


class Bus:
    """Both ends of a python-can virtual bus: the station sends, the machine side decodes."""

    def __init__(self) -> None:
        channel = f"excap-guard-{uuid.uuid4().hex}"
        self.station = can.Bus(interface="virtual", channel=channel)
        self.machine = can.Bus(interface="virtual", channel=channel)

    def received(self) -> list[can.Message]:
        frames = []
        while (msg := self.machine.recv(0)) is not None:
            frames.append(msg)
        return frames

    def close(self) -> None:
        self.station.shutdown()
        self.machine.shutdown()


def decoded(frames: list[can.Message], profile) -> list[tuple[tuple[float, ...], bool]]:  # type: ignore[no-untyped-def]
    """The machine's view after each complete set of cab-joystick frames."""
    receiver = CabJoystickReceiver(profile.cab_joysticks, profile.functions)
    views = []
    for index, msg in enumerate(frames, 1):
        receiver.feed(msg, 0)
        if index % len(profile.cab_joysticks.joysticks) == 0:
            values, enabled, _ = receiver.command()
            views.append((values, enabled))
    return views


def test_a_send_that_raises_a_non_can_error_faults_the_link_and_neutral_frames_go_out():
    profile = load_profile()
    bus = Bus()
    events: list[tuple[str, int, dict]] = []
    armed, broke = threading.Event(), threading.Event()

    def send(msg: can.Message) -> None:
        """The adapter's send path; its driver fails once with a non-CAN error while the boom is commanded."""
        if armed.is_set() and not broke.is_set():
            broke.set()
            raise RuntimeError("adapter driver bug")
        bus.station.send(msg)

    link = CommandLink(CommandLinkConfig(rate_hz=100, stale_timeout_s=0.5), CommandMapper(profile, "iso"),
                       profile.cab_joysticks, send=send,
                       on_event=lambda kind, t_ns, detail: events.append((kind, t_ns, detail)))
    feeding = threading.Event()
    try:
        link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
        link.start()
        wait_for(lambda: link.state == LinkState.ACTIVE, message="enabled from neutral")

        def feed() -> None:
            while not feeding.wait(0.005):
                link.set_input(OperatorInput(BOOM_UP, ENABLE, now_ns()))

        threading.Thread(target=feed, daemon=True).start()
        wait_for(lambda: link.last_command[1] and link.last_command[0][0] > 0.5, message="boom up commanded")
        armed.set()
        wait_for(lambda: link.guard.failed, message="the link's fault")
        assert link.state == LinkState.FAULTED and link.fault == "command link failed: RuntimeError: adapter driver bug"
        assert events == [("fault", link.guard.fault.t_ns, {"device": "command_link",
                                                            "error": "RuntimeError: adapter driver bug",
                                                            "thread": "command-link"})]
        views = decoded(bus.received(), profile)
        assert any(enabled and values[0] > 0.5 for values, enabled in views)  # boom up went out before
        assert views[-1] == ((0.0,) * 6, False)  # the last frames on the wire are neutral
        sent = link.sent_frames
        assert link.tick() == ((0.0,) * 6, False)  # a faulted link only ever sends neutral
        assert link.sent_frames == sent + len(profile.cab_joysticks.joysticks)
    finally:
        feeding.set()
        link.stop()
        bus.close()


def test_a_rate_that_would_make_the_loop_spin_is_refused_when_the_link_starts():
    profile = load_profile()
    config = CommandLinkConfig(rate_hz=50)
    link = CommandLink(config, CommandMapper(profile), profile.cab_joysticks)
    config.rate_hz = float("nan")
    with pytest.raises(ConfigError, match=r"^command rate_hz: must be a finite number between 1 and 200 \(got nan\)"):
        link.start()
    assert link.state == LinkState.DISABLED and not link.guard.failed


# -- device threads -----------------------------------------------------------------------------------------


def test_the_simulated_machine_fails_on_a_message_it_cannot_simulate(tmp_path: Path):
    dbc = tmp_path / "machine.dbc"
    dbc.write_text(DEFAULT_DBC.read_text() + '\nBO_ 2566852350 Mystery: 8 Vector__XXX\n'
                   ' SG_ Gauge : 0|8@1+ (1,0) [0|250] "" Vector__XXX\n\n'
                   'BA_ "GenMsgCycleTime" BO_ 2566852350 20;\n')
    bus = Bus()
    machine = SimulatedExcavator(bus.machine, dbc, tick_s=0.005)
    faults = Faults()
    machine.guard.listen(faults)
    try:
        assert machine.health == Health.STOPPED
        machine.start()
        wait_for(lambda: faults.heard, message="the machine's fault")
        assert faults.heard[0].device == "machine" and faults.heard[0].error == "KeyError: 'Mystery'"
        assert machine.health == Health.FAILED
    finally:
        machine.stop()
        bus.close()
    assert machine.health == Health.STOPPED


def test_a_simulated_camera_whose_scene_fails_is_failed_and_stops():
    frames: list[int] = []
    model = ExcavatorModel()
    calls = {"n": 0}

    def scene():  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] > 3:
            raise ArithmeticError("machine state unavailable")
        return model.state

    camera = SimulatedCamera("side", "side", scene, lambda t, td, image: frames.append(t), 64, 48, 100.0)
    faults = Faults()
    camera.guard.listen(faults)
    camera.start()
    try:
        wait_for(lambda: faults.heard, message="the camera's fault")
        assert camera.health == Health.FAILED and len(frames) == 3
        assert faults.heard[0].detail() == {"device": "camera/side", "error": "ArithmeticError: machine state "
                                            "unavailable", "thread": "sim-camera-side"}
    finally:
        camera.stop()
    with pytest.raises(ConfigError, match=r"camera top: fps: must be a finite number above 0 and at most 240 "
                                          r"\(got 'fast'\)"):
        SimulatedCamera("top", "top", lambda: model.state, lambda *a: None, 64, 48, "fast")  # type: ignore[arg-type]


class Sink:
    """What a JPEG encoder records into: events, and a stream whose writes fail after some rows."""

    def __init__(self, fail_after: int) -> None:
        self.events: list[tuple[str, dict]] = []
        self.rows: list[tuple] = []
        self.fail_after = fail_after
        self.spec = camera_spec("cab", 32, 24, 10.0, source="/dev/video0")

    def event(self, kind: str, t_ns: int | None = None, **detail: object) -> None:
        self.events.append((kind, detail))

    def put(self, row: tuple) -> None:
        if len(self.rows) >= self.fail_after:
            raise OSError(28, "No space left on device")
        self.rows.append(row)


def test_a_frame_that_cannot_be_encoded_is_a_drop_and_a_dying_encoder_a_fault():
    sink = Sink(fail_after=2)
    encoder = JpegEncoder(sink, sink, quality=80, backlog=64)  # type: ignore[arg-type]
    faults = Faults()
    encoder.guard.listen(faults)
    encoder.start()
    image = np.zeros((24, 32, 3), np.uint8)
    encoder.submit(1, 1, np.zeros((24, 32, 7), np.uint8))  # 7 channels: not an image JPEG can hold
    encoder.submit(2, 2, image)
    encoder.flush()
    assert [kind for kind, _ in sink.events] == ["drop"] and sink.events[0][1]["stage"] == "encoder"
    assert "reason" in sink.events[0][1] and len(sink.rows) == 1
    for index in range(3, 8):
        encoder.submit(index, index, image)
    wait_for(lambda: faults.heard, message="the encoder's fault")
    assert faults.heard[0].device == "camera/cab encoder"
    assert faults.heard[0].error == "OSError: [Errno 28] No space left on device"
    for index in range(20):
        encoder.submit(100 + index, 0, image)  # counted, without an event each
    assert encoder.dropped >= 20 and [kind for kind, _ in sink.events] == ["drop"]
    encoder.stop()  # returns although the encoder thread is gone


def test_a_j1939_joystick_frame_with_a_broken_timestamp_is_still_read():
    samples = []
    joystick = J1939Joystick(J1939JoystickConfig("grip", 0x2C), samples.append)
    from excap.drivers.can.joystick_messages import encode_bjm1

    msg = encode_bjm1(0.5, 0.0, [0] * 12, 0x2C)
    msg.timestamp = float("inf")
    joystick.listener().on_message_received(msg)
    assert samples[0].t_device_ns == 0 and samples[0].axes == (0.5, 0.0)
    assert not joystick.guard.failed
