"""SerialJoystick over real pseudo-terminal pairs, fed by the simulated serial peer."""

import contextlib
import os
import re
import threading
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from excap.core.clock import now_ns
from excap.core.errors import DriverError
from excap.drivers.base import Health
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.joystick.serial_joystick import SerialJoystick, SerialJoystickConfig
from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig, StateSource
from excap.drivers.joystick.serial_protocols import ProtocolName, encode_ascii, encode_exjs1
from tests.support.waiting import wait_for

AXES = (0.25, -0.5, 1.0, 0.0)
BUTTONS = (1, 0, 1, 1, 0, 0, 0, 1, 0, 1)
GARBAGE = bytes(range(0x10, 0x24)) * 3  # neither an EXJS1 sync byte nor '$' or '\n'
PROTOCOLS: tuple[ProtocolName, ...] = ("exjs1", "ascii")


def constant(axes: tuple[float, ...], buttons: tuple[int, ...]) -> StateSource:
    return lambda index: (axes, buttons)


@dataclass
class Pty:
    """A raw pseudo-terminal pair: the test writes the master, the driver opens the slave's path."""

    master: int
    slave: int
    path: str

    @classmethod
    def open(cls) -> "Pty":
        master, slave = os.openpty()
        tty.setraw(slave)
        return cls(master, slave, os.ttyname(slave))

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def point(link: Path, target: str) -> None:
    """Atomically (re)point a symlink, as udev does for a replugged device."""
    staging = link.with_name(link.name + ".new")
    staging.unlink(missing_ok=True)
    os.symlink(target, staging)
    os.replace(staging, link)


@dataclass
class Rig:
    tmp_path: Path
    ptys: list[Pty] = field(default_factory=list)
    peers: list[SerialPeer] = field(default_factory=list)
    joysticks: list[SerialJoystick] = field(default_factory=list)
    samples: list[JoystickSample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def pty(self) -> Pty:
        pair = Pty.open()
        self.ptys.append(pair)
        return pair

    def peer(self, pair: Pty, protocol: ProtocolName, state: StateSource | None = None,
             rate_hz: float = 200.0) -> SerialPeer:
        # a generous write timeout: a reader starved by a loaded host must not see torn frames
        peer = SerialPeer(pair.master, SerialPeerConfig(protocol=protocol, rate_hz=rate_hz, write_timeout_s=5.0),
                          state or constant(AXES, BUTTONS))
        self.peers.append(peer)
        return peer.start()

    def joystick(self, port: str, protocol: ProtocolName, **options: object) -> SerialJoystick:
        config = SerialJoystickConfig(port=port, protocol=protocol, device="stick", button_count=len(BUTTONS),
                                      **options)  # type: ignore[arg-type]
        joystick = SerialJoystick(config, self.on_sample)
        self.joysticks.append(joystick)
        return joystick

    def on_sample(self, sample: JoystickSample) -> None:
        with self.lock:
            self.samples.append(sample)

    def count(self) -> int:
        with self.lock:
            return len(self.samples)

    def since(self, start: int) -> list[JoystickSample]:
        with self.lock:
            return self.samples[start:]

    def close(self) -> None:
        for peer in self.peers:
            peer.stop()
        for joystick in self.joysticks:
            joystick.close()
        for pair in self.ptys:
            pair.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path)
    yield rig
    rig.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_samples_arrive_with_axes_and_buttons(rig: Rig, protocol: ProtocolName) -> None:
    pair = rig.pty()
    joystick = rig.joystick(pair.path, protocol)
    assert joystick.health is Health.STOPPED
    t_open = now_ns()
    joystick.open()
    rig.peer(pair, protocol)
    wait_for(lambda: rig.count() >= 30, message="30 samples")
    wait_for(lambda: joystick.health is Health.OK, message="health OK")
    samples = rig.since(0)
    tolerance = 1 / 32767 if protocol == "exjs1" else 1e-9
    for sample in samples:
        assert sample.device == "stick"
        assert sample.axes == pytest.approx(AXES, abs=tolerance)
        assert sample.buttons == BUTTONS
        assert t_open <= sample.t_ns <= now_ns()
    assert [s.t_ns for s in samples] == sorted(s.t_ns for s in samples)
    device_times = [s.t_device_ns for s in samples]
    assert all(t % 1000 == 0 for t in device_times)
    assert device_times == sorted(device_times) and len(set(device_times)) == len(device_times)
    assert joystick.counters.samples >= len(samples)
    assert joystick.counters.last_t_ns is not None
    assert (joystick.counters.bad_frames, joystick.garbage_bytes, joystick.counters.reconnects) == (0, 0, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_mid_stream_resyncs_and_is_counted(rig: Rig, protocol: ProtocolName) -> None:
    pair = rig.pty()
    joystick = rig.joystick(pair.path, protocol)
    joystick.open()
    peer = rig.peer(pair, protocol)
    wait_for(lambda: rig.count() >= 10, message="first samples")

    peer.inject(GARBAGE)
    wait_for(lambda: joystick.garbage_bytes == len(GARBAGE), message="garbage to be counted")
    after_garbage = rig.count()
    wait_for(lambda: rig.count() >= after_garbage + 10, message="samples after the garbage")

    if protocol == "exjs1":
        corrupt = bytearray(encode_exjs1(0, 0, AXES, BUTTONS))
        corrupt[6] ^= 0xFF
    else:
        corrupt = bytearray(encode_ascii(0, AXES, BUTTONS))
        corrupt[6] = ord("9") if corrupt[6] != ord("9") else ord("8")
    peer.inject(bytes(corrupt))
    wait_for(lambda: joystick.counters.bad_frames == 1, message="the corrupted frame to be counted bad")
    after_bad = rig.count()
    wait_for(lambda: rig.count() >= after_bad + 10, message="samples after the corrupted frame")
    wait_for(lambda: joystick.health is Health.OK, message="health OK")

    for sample in rig.since(0):
        assert sample.buttons == BUTTONS
        assert sample.axes == pytest.approx(AXES, abs=1 / 32767)
    assert joystick.counters.bad_frames == 1
    assert joystick.counters.reconnects == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_health_stale_when_peer_goes_quiet(rig: Rig, protocol: ProtocolName) -> None:
    pair = rig.pty()
    joystick = rig.joystick(pair.path, protocol, stale_after_s=0.1)
    joystick.open()
    peer = rig.peer(pair, protocol)
    wait_for(lambda: joystick.health is Health.OK, message="health OK")

    peer.pause()
    wait_for(lambda: joystick.health is Health.STALE, message="health STALE after the peer went quiet")
    paused_at = rig.count()

    peer.resume()
    wait_for(lambda: rig.count() > paused_at and joystick.health is Health.OK, message="health OK again")
    assert joystick.counters.reconnects == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unplug_then_replug_reconnects(rig: Rig, protocol: ProtocolName) -> None:
    link = rig.tmp_path / "ttyJOY0"
    first = rig.pty()
    point(link, first.path)
    joystick = rig.joystick(str(link), protocol, reconnect_interval_s=0.05)
    joystick.open()
    first_peer = rig.peer(first, protocol)
    wait_for(lambda: rig.count() >= 10 and joystick.health is Health.OK, message="samples from the first pty")

    first_peer.stop()
    first.close()  # unplugged: the pty pair is gone
    wait_for(lambda: joystick.health is Health.DISCONNECTED, message="health DISCONNECTED")
    assert joystick.counters.reconnects == 0
    assert joystick.last_error
    unplugged_at = rig.count()

    second = rig.pty()  # replugged: a new device node, the stable link repointed to it
    point(link, second.path)
    replugged_axes = (-0.75, 0.5, 0.0, 0.125)
    rig.peer(second, protocol, constant(replugged_axes, BUTTONS))
    wait_for(lambda: joystick.counters.reconnects == 1, message="a reconnect")
    wait_for(lambda: joystick.health is Health.OK, message="health OK after the reconnect")
    wait_for(lambda: len(rig.since(unplugged_at)) >= 10, message="samples from the second pty")
    for sample in rig.since(unplugged_at):
        assert sample.axes == pytest.approx(replugged_axes, abs=1 / 32767)
    assert joystick.counters.reconnects == 1


def test_open_failure_names_the_port(rig: Rig, tmp_path: Path) -> None:
    missing = tmp_path / "ttyNOPE"
    joystick = rig.joystick(str(missing), "exjs1")
    with pytest.raises(DriverError, match=re.escape(str(missing))) as error:
        joystick.open()
    assert "\n" not in str(error.value)
    assert joystick.health is Health.STOPPED


def test_context_manager_and_failing_callback(rig: Rig) -> None:
    pair = rig.pty()
    calls = []

    def failing(sample: JoystickSample) -> None:
        calls.append(sample)
        raise RuntimeError("consumer failed")

    rig.peer(pair, "exjs1")
    config = SerialJoystickConfig(port=pair.path, protocol="exjs1")
    with SerialJoystick(config, failing) as joystick:
        wait_for(lambda: joystick.counters.dropped >= 5, message="callback failures to be counted")
        assert joystick.health in (Health.OK, Health.STALE)
        assert len(calls) >= 5
    assert joystick.health is Health.STOPPED


def test_unknown_protocol_rejected() -> None:
    with pytest.raises(DriverError, match="unknown protocol"):
        SerialJoystick(SerialJoystickConfig(port="/dev/null", protocol="modbus"),  # type: ignore[arg-type]
                       lambda sample: None)
