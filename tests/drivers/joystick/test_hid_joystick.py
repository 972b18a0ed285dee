"""HID joystick driver: real input_event records through a FIFO, read by `inputs`, turned into samples."""

import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import inputs
import pytest

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import Health
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.joystick.evdev_peer import EVENT_FORMAT, EvdevPeer
from excap.drivers.joystick.hid_joystick import HidJoystick, HidJoystickConfig, discover, scale_axis
from tests.support.waiting import wait_for

T_KERNEL_NS = 1_700_000_000_123_456_000


class Samples:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[JoystickSample] = []

    def __call__(self, sample: JoystickSample) -> None:
        with self._lock:
            self._items.append(sample)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> JoystickSample:
        with self._lock:
            return self._items[index]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[EvdevPeer]:
    device = EvdevPeer(tmp_path / "usb-Test_Pad-event-joystick")
    device.plug()
    yield device
    device.unplug()


def config_for(path: Path, **overrides: object) -> HidJoystickConfig:
    return HidJoystickConfig(device=str(path), poll_interval_s=0.05, reconnect_interval_s=0.05, **overrides)


def test_event_records_match_the_inputs_package() -> None:
    assert EVENT_FORMAT == inputs.EVENT_FORMAT
    assert struct.calcsize(EVENT_FORMAT) == inputs.EVENT_SIZE == 24


def test_axis_and_button_changes_arrive_with_kernel_timestamps(peer: EvdevPeer) -> None:
    samples = Samples()
    with HidJoystick(config_for(peer.path, axes=("ABS_X", "ABS_Y", "ABS_Z", "ABS_RZ"),
                                buttons=("BTN_SOUTH", "BTN_TR")), samples) as joystick:
        assert joystick.health is Health.OK
        assert joystick.device_name == "Test Pad"
        assert joystick.last_event_age_s is None
        before = now_ns()
        sent = peer.frame(axes={"ABS_X": 32767, "ABS_Y": -32768, "ABS_Z": 255}, buttons={"BTN_SOUTH": 1},
                          t_device_ns=T_KERNEL_NS)
        wait_for(lambda: len(samples) == 1, message="first sample")
        first = samples[0]
        assert first.t_device_ns == sent == T_KERNEL_NS
        assert before <= first.t_ns <= now_ns()
        assert first.device == "Test Pad"
        assert first.axes == (1.0, -1.0, 1.0, -1.0)  # ABS_RZ untouched: a trigger at rest
        assert first.buttons == (1, 0)

        peer.frame(axes={"ABS_X": 0, "ABS_Z": 0}, buttons={"BTN_SOUTH": 0, "BTN_TR": 1},
                   t_device_ns=T_KERNEL_NS + 8_000_000)
        wait_for(lambda: len(samples) == 2, message="second sample")
        second = samples[1]
        assert second.t_device_ns == T_KERNEL_NS + 8_000_000
        assert second.t_ns >= first.t_ns
        assert second.axes == (0.0, -1.0, -1.0, -1.0)  # ABS_Y keeps its last reported value
        assert second.buttons == (0, 1)
        assert joystick.counters.samples == 2
        assert joystick.counters.last_t_ns == second.t_ns
        age = joystick.last_event_age_s
        assert age is not None and age >= 0.0
    assert joystick.health is Health.STOPPED


def test_default_timestamps_keep_microseconds(peer: EvdevPeer) -> None:
    samples = Samples()
    with HidJoystick(config_for(peer.path), samples):
        sent = peer.frame(axes={"ABS_RX": -16384})
        wait_for(lambda: len(samples) == 1, message="sample")
    assert samples[0].t_device_ns == sent
    assert samples[0].axes[2] == pytest.approx(-0.5)


def test_scale_axis_ranges() -> None:
    assert scale_axis(0, -32768, 32767) == 0.0
    assert scale_axis(32767, -32768, 32767) == 1.0
    assert scale_axis(-32768, -32768, 32767) == -1.0
    assert scale_axis(16384, -32768, 32767) == pytest.approx(0.5, abs=1e-4)
    assert scale_axis(0, 0, 255) == -1.0
    assert scale_axis(255, 0, 255) == 1.0
    assert scale_axis(-1, -1, 1) == -1.0
    assert scale_axis(40000, -32768, 32767) == 1.0  # out of range clamps
    assert scale_axis(5, 5, 5) == 0.0


def test_configured_ranges_and_button_aliases(peer: EvdevPeer) -> None:
    samples = Samples()
    config = config_for(peer.path, name="left stick", axes=("ABS_HAT0X", "ABS_HAT0Y", "ABS_Z", "ABS_X"),
                        buttons=("BTN_A", "BTN_Y", "BTN_TRIGGER"), axis_ranges={"ABS_Z": (0, 1023), "ABS_X": (0, 255)})
    with HidJoystick(config, samples):
        peer.frame(axes={"ABS_HAT0X": -1, "ABS_HAT0Y": 1, "ABS_Z": 1023, "ABS_X": 255},
                   buttons={"BTN_SOUTH": 1, "BTN_WEST": 1, "BTN_TRIGGER": 1, "BTN_TR": 1})
        wait_for(lambda: len(samples) == 1, message="sample")
    assert samples[0].device == "left stick"
    assert samples[0].axes == (-1.0, 1.0, 1.0, 1.0)
    assert samples[0].buttons == (1, 1, 1)


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ConfigError, match="ABS_NOPE"):
        HidJoystick(HidJoystickConfig(device="/dev/input/event0", axes=("ABS_NOPE",)), Samples())
    with pytest.raises(ConfigError, match="twice"):
        HidJoystick(HidJoystickConfig(device="/dev/input/event0", buttons=("BTN_A", "BTN_SOUTH")), Samples())


def test_missing_device_names_it(tmp_path: Path) -> None:
    path = tmp_path / "usb-Gone_Pad-event-joystick"
    with pytest.raises(DriverError) as caught:
        HidJoystick(config_for(path), Samples()).open()
    message = str(caught.value)
    assert "\n" not in message and str(path) in message and "Gone Pad" in message

    with pytest.raises(DriverError, match="Nothing_Like_This") as caught:
        HidJoystick(HidJoystickConfig(device="Nothing_Like_This", search_dirs=(str(tmp_path),)), Samples()).open()
    assert "\n" not in str(caught.value)


def test_unplug_disconnects_and_replug_resumes(peer: EvdevPeer) -> None:
    samples = Samples()
    with HidJoystick(config_for(peer.path, axes=("ABS_X", "ABS_Y")), samples) as joystick:
        peer.frame(axes={"ABS_X": 32767, "ABS_Y": 32767}, t_device_ns=T_KERNEL_NS)
        wait_for(lambda: len(samples) == 1, message="sample before unplug")

        peer.unplug()
        wait_for(lambda: joystick.health is Health.DISCONNECTED, message="DISCONNECTED after unplug")
        assert len(samples) == 1
        assert joystick.counters.reconnects == 0

        peer.plug()
        peer.frame(axes={"ABS_X": -32768}, t_device_ns=T_KERNEL_NS + 1_000_000_000)
        wait_for(lambda: len(samples) == 2, message="sample after re-plug")
        assert joystick.health is Health.OK
        assert joystick.counters.reconnects == 1
        after = samples[1]
        assert after.t_device_ns == T_KERNEL_NS + 1_000_000_000
        assert after.axes == (-1.0, 0.0)  # nothing carried over from before the unplug

        peer.frame(axes={"ABS_Y": -32768}, t_device_ns=T_KERNEL_NS + 1_010_000_000)
        wait_for(lambda: len(samples) == 3, message="second sample after re-plug")
        assert samples[2].axes == (-1.0, -1.0)
        assert joystick.counters.reconnects == 1


def test_removed_device_file_disconnects(peer: EvdevPeer) -> None:
    samples = Samples()
    with HidJoystick(config_for(peer.path), samples) as joystick:
        peer.remove()  # the node vanishes while both ends are still open
        wait_for(lambda: joystick.health is Health.DISCONNECTED, message="DISCONNECTED after removal")
        peer.close()

        peer.plug()
        wait_for(lambda: joystick.health is Health.OK, message="OK after re-plug")
        peer.frame(buttons={"BTN_START": 1})
        wait_for(lambda: len(samples) == 1, message="sample after re-plug")
        assert samples[0].buttons[7] == 1
        assert joystick.counters.reconnects == 1


def test_syn_dropped_discards_the_partial_update(peer: EvdevPeer) -> None:
    samples = Samples()
    with HidJoystick(config_for(peer.path, axes=("ABS_X",), buttons=("BTN_SOUTH",)), samples) as joystick:
        peer.dropped()
        peer.frame(axes={"ABS_X": 32767})  # the kernel's discarded remainder
        peer.frame(buttons={"BTN_SOUTH": 1}, t_device_ns=T_KERNEL_NS)
        wait_for(lambda: len(samples) == 1, message="sample after the overrun")
        assert samples[0].t_device_ns == T_KERNEL_NS
        assert samples[0].axes == (0.0,)
        assert samples[0].buttons == (1,)
        assert joystick.counters.dropped == 1


def test_failing_callback_does_not_stop_the_reader(peer: EvdevPeer) -> None:
    samples = Samples()

    def on_sample(sample: JoystickSample) -> None:
        samples(sample)
        if len(samples) == 1:
            raise ValueError("consumer failed")

    with HidJoystick(config_for(peer.path), on_sample) as joystick:
        peer.frame(axes={"ABS_X": 1})
        peer.frame(axes={"ABS_X": 2})
        wait_for(lambda: len(samples) == 2, message="both samples")
        assert joystick.health is Health.OK
        assert joystick.counters.dropped == 1


def test_discover_and_open_by_name(tmp_path: Path) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    pad = EvdevPeer(tmp_path / "event7")
    pad.plug()
    keyboard = EvdevPeer(tmp_path / "event3")
    keyboard.plug()
    try:
        (by_id / "usb-Logitech_Gamepad_F310-event-joystick").symlink_to(pad.path)
        (by_id / "usb-Logitech_Gamepad_F310-joystick").symlink_to(tmp_path / "js0")
        (by_id / "usb-Some_Keyboard-event-kbd").symlink_to(keyboard.path)
        found = discover((str(by_id),))
        assert [info.name for info in found] == ["Logitech Gamepad F310"]
        assert found[0].char_path == str(pad.path)

        samples = Samples()
        config = HidJoystickConfig(device="gamepad f310", search_dirs=(str(by_id),), poll_interval_s=0.05)
        with HidJoystick(config, samples) as joystick:
            assert joystick.info is not None and joystick.info.path == str(found[0].path)
            pad.frame(axes={"ABS_Y": 32767})
            wait_for(lambda: len(samples) == 1, message="sample")
        assert samples[0].device == "Logitech Gamepad F310"
        assert samples[0].axes[1] == 1.0
    finally:
        pad.unplug()
        keyboard.unplug()
