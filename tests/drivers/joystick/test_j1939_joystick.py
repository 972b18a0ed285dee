"""J1939Joystick on real python-can `virtual` buses: frames sent from a second Bus on the same channel."""

import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import can
import pytest

from excap.drivers.base import Health
from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.joystick_messages import BJM1_PGN, encode_bjm1, encode_ejm1
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.joystick.j1939_joystick import J1939Joystick, J1939JoystickConfig
from tests.support.waiting import wait_for

ADDRESS = 0x13
BUTTONS = (1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1)


@dataclass
class Rig:
    channel: str = field(default_factory=lambda: f"excap-j1939-joystick-{uuid.uuid4().hex}")
    buses: list[can.BusABC] = field(default_factory=list)
    joysticks: list[J1939Joystick] = field(default_factory=list)
    samples: list[JoystickSample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bus(self) -> can.BusABC:
        bus = can.Bus(interface="virtual", channel=self.channel)
        self.buses.append(bus)
        return bus

    def collect(self, sample: JoystickSample) -> None:
        with self.lock:
            self.samples.append(sample)

    def taken(self) -> list[JoystickSample]:
        with self.lock:
            return list(self.samples)

    def joystick(self, **overrides) -> tuple[J1939Joystick, can.BusABC]:
        config = J1939JoystickConfig(**{"name": "left", "source_address": ADDRESS, "use_ejm": False, **overrides})
        joystick = J1939Joystick(config, self.collect)
        self.joysticks.append(joystick)
        joystick.attach(self.bus())
        return joystick, self.bus()


@pytest.fixture
def rig() -> Iterator[Rig]:
    state = Rig()
    yield state
    for joystick in state.joysticks:
        joystick.close()
    for bus in state.buses:
        bus.shutdown()


def test_bjm1_frames_become_samples(rig):
    joystick, sender = rig.joystick()
    sender.send(encode_bjm1(0.25, -0.5, BUTTONS, ADDRESS))
    sender.send(encode_bjm1(-1.0, 1.0, [0] * 12, ADDRESS))
    wait_for(lambda: len(rig.taken()) >= 2, message="two samples")
    first, second = rig.taken()[:2]
    assert first.device == "left"
    assert first.axes == pytest.approx((0.25, -0.5))
    assert first.buttons == BUTTONS
    assert second.axes == pytest.approx((-1.0, 1.0))
    assert second.buttons == (0,) * 12
    assert first.t_ns <= second.t_ns
    assert first.t_device_ns > 0
    assert joystick.counters.samples == 2
    assert joystick.counters.bad_frames == 0


def test_ejm1_adds_grip_axes(rig):
    joystick, sender = rig.joystick(use_ejm=True, stale_after_s=30.0)
    assert joystick.axis_names == ("x", "y", "grip_x", "grip_y", "theta")
    sender.send(encode_bjm1(0.1, 0.2, [0] * 12, ADDRESS))
    wait_for(lambda: rig.taken(), message="a sample before any EJM1")
    assert rig.taken()[0].axes[:2] == pytest.approx((0.1, 0.2))
    assert all(math.isnan(v) for v in rig.taken()[0].axes[2:])  # no EJM1 yet: grip axes unknown
    sender.send(encode_ejm1(-0.3, 0.4, 0.9, ADDRESS))
    sender.send(encode_bjm1(0.1, 0.2, [0] * 12, ADDRESS))
    wait_for(lambda: len(rig.taken()) >= 2, message="a sample after EJM1")
    assert rig.taken()[1].axes == pytest.approx((0.1, 0.2, -0.3, 0.4, 0.9))
    assert joystick.counters.samples == 2  # EJM1 alone emits nothing


def test_ejm1_ignored_without_use_ejm(rig):
    _, sender = rig.joystick()
    sender.send(encode_ejm1(-0.3, 0.4, 0.9, ADDRESS))
    sender.send(encode_bjm1(0.5, 0.5, [0] * 12, ADDRESS))
    wait_for(lambda: rig.taken(), message="a sample")
    assert rig.taken()[0].axes == pytest.approx((0.5, 0.5))


def test_other_source_addresses_and_pgns_are_ignored(rig):
    joystick, sender = rig.joystick()
    sender.send(encode_bjm1(0.9, 0.9, [1] * 12, ADDRESS + 1))
    sender.send(can.Message(arbitration_id=J1939Id(6, 65262, ADDRESS).arbitration_id(), is_extended_id=True,
                            data=bytes(8)))  # engine temperature from the same address
    sender.send(can.Message(arbitration_id=0x123, is_extended_id=False, data=bytes(8)))
    sender.send(encode_bjm1(-0.2, 0.3, [0] * 12, ADDRESS))  # the marker: everything before it was seen
    wait_for(lambda: rig.taken(), message="the sample from our address")
    samples = rig.taken()
    assert len(samples) == 1
    assert samples[0].axes == pytest.approx((-0.2, 0.3))
    assert joystick.counters.bad_frames == 0


def test_not_available_axes_are_nan(rig):
    joystick, sender = rig.joystick()
    ident = J1939Id(3, BJM1_PGN, ADDRESS).arbitration_id()
    sender.send(can.Message(arbitration_id=ident, is_extended_id=True, data=b"\xff" * 8))
    wait_for(lambda: rig.taken(), message="the not-available sample")
    sample = rig.taken()[0]
    assert len(sample.axes) == 2
    assert all(math.isnan(v) for v in sample.axes)
    assert joystick.counters.bad_frames == 1
    assert joystick.counters.samples == 1


def test_short_frame_counts_as_bad(rig):
    joystick, sender = rig.joystick()
    ident = J1939Id(3, BJM1_PGN, ADDRESS).arbitration_id()
    sender.send(can.Message(arbitration_id=ident, is_extended_id=True, data=bytes(4)))
    sender.send(encode_bjm1(0.0, 0.0, [0] * 12, ADDRESS))
    wait_for(lambda: rig.taken(), message="the good sample")
    assert joystick.counters.bad_frames == 1
    assert len(rig.taken()) == 1


def test_stale_after_silence_and_ok_while_reporting(rig):
    joystick, sender = rig.joystick(stale_after_s=0.3)
    assert joystick.health == Health.STALE  # nothing received yet
    stop = threading.Event()

    def report() -> None:
        while not stop.wait(0.01):
            sender.send(encode_bjm1(0.0, 0.0, [0] * 12, ADDRESS))

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        wait_for(lambda: joystick.health == Health.OK, message="OK while reporting")
    finally:
        stop.set()
        thread.join()
    wait_for(lambda: joystick.health == Health.STALE, message="STALE after silence")
    joystick.close()
    assert joystick.health == Health.STOPPED


def test_shared_notifier_feeds_two_joysticks(rig):
    bus = rig.bus()
    left = J1939Joystick(J1939JoystickConfig("left", 0x13), rig.collect)
    right = J1939Joystick(J1939JoystickConfig("right", 0x14), rig.collect)
    notifier = can.Notifier(bus, [left.listener(), right.listener()], timeout=0.05)
    try:
        sender = rig.bus()
        sender.send(encode_bjm1(0.1, 0.0, [0] * 12, 0x13))
        sender.send(encode_bjm1(0.0, 0.2, [0] * 12, 0x14))
        wait_for(lambda: len(rig.taken()) >= 2, message="one sample from each joystick")
    finally:
        notifier.stop()
    by_device = {s.device: s.axes for s in rig.taken()}
    assert by_device["left"] == pytest.approx((0.1, 0.0))
    assert by_device["right"] == pytest.approx((0.0, 0.2))


def test_callback_failure_counts_as_dropped(rig):
    bus = rig.bus()

    def broken(sample: JoystickSample) -> None:
        raise RuntimeError("consumer failed")

    joystick = J1939Joystick(J1939JoystickConfig("left", ADDRESS), broken)
    rig.joysticks.append(joystick)
    joystick.attach(bus)
    rig.bus().send(encode_bjm1(0.0, 0.0, [0] * 12, ADDRESS))
    wait_for(lambda: joystick.counters.dropped == 1, message="the dropped sample")
    assert joystick.counters.samples == 1
