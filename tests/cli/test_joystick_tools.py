"""Joystick monitor and calibration over a J1939 joystick on a python-can `virtual` bus fed by a sender thread."""

import io
import re
import threading
import uuid
from collections.abc import Iterator

import can
import pytest

from excap.cli.joystick_console import axis_bar, monitor, run_calibration
from excap.cli.joystick_tools import J1939BusJoystick, joystick_factory, make_joystick, open_joystick
from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import Health
from excap.drivers.can.joystick_messages import encode_bjm1
from excap.drivers.joystick.hid_joystick import HidJoystick
from excap.drivers.joystick.serial_joystick import SerialJoystick
from excap.drivers.joystick.sim_joystick import SimJoystick
from tests.support.waiting import wait_for

ADDRESS = 0x13
PRESSED = (1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)


class Sender:
    """Sends BJM1 frames at about 100 Hz, cycling through `states` ((x, y) pairs); `set` swaps the cycle."""

    def __init__(self, channel: str, states: list[tuple[float, float]]) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self._states = list(states)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def set(self, states: list[tuple[float, float]]) -> None:
        with self._lock:
            self._states = list(states)

    def start(self) -> "Sender":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.bus.shutdown()

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(0.01):
            with self._lock:
                x, y = self._states[index % len(self._states)]
            self.bus.send(encode_bjm1(x, y, PRESSED, ADDRESS))
            self.sent += 1
            index += 1


@pytest.fixture
def channel() -> str:
    return f"excap-joystick-tools-{uuid.uuid4().hex}"


@pytest.fixture
def sender(channel: str) -> Iterator[Sender]:
    feeding = Sender(channel, [(0.25, -0.5)]).start()
    yield feeding
    feeding.stop()


def j1939_spec(channel: str, **overrides) -> dict:
    return {"type": "j1939", "name": "left", "source_address": ADDRESS, "interface": "virtual",
            "channel": channel, **overrides}


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_monitor(factory, out: io.StringIO) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=monitor, args=(factory, out, None), kwargs={"refresh_hz": 20, "stop": stop},
                              daemon=True)
    thread.start()
    return thread, stop


def rates(text: str) -> list[float]:
    return [float(r) for r in re.findall(r"rate=([0-9.]+)Hz", text)]


# -- monitor -------------------------------------------------------------------------------------


def test_monitor_lines_show_axes_buttons_rate_and_health(channel, sender):
    out = io.StringIO()
    thread, stop = run_monitor(joystick_factory(j1939_spec(channel)), out)
    try:
        wait_for(lambda: "x=+0.250 y=-0.500 buttons=101000000001" in out.getvalue(), message="axis values")
        wait_for(lambda: any(r > 5 for r in rates(out.getvalue())), message="a sample rate")
        wait_for(lambda: " left ok " in out.getvalue(), message="health ok")
    finally:
        stop.set()
        thread.join()
    lines = out.getvalue().splitlines()
    assert all(line.startswith("t=") for line in lines)
    assert "\x1b[" not in out.getvalue()
    assert re.search(r"samples=[1-9][0-9]* bad_frames=0 dropped=0 reconnects=0", out.getvalue())


def test_monitor_on_a_terminal_redraws_with_bars(channel, sender):
    out = Tty()
    thread, stop = run_monitor(joystick_factory(j1939_spec(channel)), out)
    try:
        # redrawn in place: the bar shown, and at least one more frame drawn over the first
        wait_for(lambda: f"+0.250 {axis_bar(0.25)}" in out.getvalue() and out.getvalue().count("\x1b[H") >= 2,
                 message="the x bar, redrawn")
    finally:
        stop.set()
        thread.join()
    text = out.getvalue()
    assert f"-0.500 {axis_bar(-0.5)}" in text
    assert axis_bar(0.25) == "[" + "-" * 15 + "|####" + "-" * 11 + "]"
    assert "pressed: 1, 3, 12" in text
    assert "health ok" in text
    assert text.endswith("\x1b[?25h")


def test_monitor_for_a_duration_stops_and_closes(channel, sender):
    drivers: list[J1939BusJoystick] = []

    def factory(on_sample):
        driver = make_joystick(j1939_spec(channel), on_sample)
        drivers.append(driver)
        return driver

    out = io.StringIO()
    monitor(factory, out, duration_s=0.3, refresh_hz=10)
    assert len(out.getvalue().splitlines()) >= 2
    assert drivers[0].health == Health.STOPPED


def test_monitor_shows_a_silent_device():
    out = io.StringIO()
    spec = j1939_spec(f"excap-joystick-tools-{uuid.uuid4().hex}")
    assert monitor(joystick_factory(spec), out, duration_s=0.2, refresh_hz=10) == 0
    assert "left stale rate=0.0Hz no samples" in out.getvalue()


def test_axis_bar():
    assert axis_bar(0.0, 5) == "[--|--]"
    assert axis_bar(1.0, 5) == "[--|##]"
    assert axis_bar(-0.5, 5) == "[-#|--]"
    assert axis_bar(float("nan"), 5) == "[?????]"


# -- calibration ---------------------------------------------------------------------------------


CENTRE = (0.03, -0.02)
SWEEP = [(-0.9, 0.7), (0.4, 0.1), (0.8, -0.6), CENTRE]


def test_calibration_from_a_scripted_sweep(channel):
    feeding = Sender(channel, [(0.5, 0.5)]).start()  # someone holding the sticks before the first prompt
    drivers: list[J1939BusJoystick] = []
    prompts: list[str] = []

    def factory(on_sample):
        driver = make_joystick(j1939_spec(channel), on_sample)
        drivers.append(driver)
        return driver

    def last_axes() -> tuple[float, ...]:
        sample = drivers[0].joystick.last_sample
        return tuple(round(v, 3) for v in sample.axes) if sample else ()

    def prompt(text: str) -> None:
        prompts.append(text)
        if len(prompts) == 1:  # release the sticks; continue once the driver has seen it
            feeding.set([CENTRE])
            wait_for(lambda: last_axes() == CENTRE, message="sticks at rest")
        else:  # sweep
            feeding.set(SWEEP)
            wait_for(lambda: last_axes() in SWEEP[:3], message="sticks moving")

    out = io.StringIO()
    try:
        result = run_calibration(factory, out, prompt, centre_s=0.4, sweep_s=1.5, deadband=0.05, expo=0.2)
    finally:
        feeding.stop()
    assert len(prompts) == 2 and "Release" in prompts[0] and "both ends" in prompts[1]
    assert result.device == "left"
    assert list(result.axes) == ["x", "y"]
    x, y = result.axes["x"], result.axes["y"]
    assert (x.centre, x.min, x.max) == pytest.approx((0.03, -0.9, 0.8))
    assert (y.centre, y.min, y.max) == pytest.approx((-0.02, -0.6, 0.7))
    assert (x.deadband, x.expo, x.invert) == (0.05, 0.2, False)
    assert "calibration of left" in out.getvalue()
    assert drivers[0].health == Health.STOPPED


def test_calibration_refuses_an_axis_left_unswept(channel):
    feeding = Sender(channel, [CENTRE]).start()
    drivers: list[J1939BusJoystick] = []

    def factory(on_sample):
        drivers.append(make_joystick(j1939_spec(channel), on_sample))
        return drivers[-1]

    def prompt(text: str) -> None:
        if "both ends" in text:
            feeding.set([(0.0, -0.9), (0.1, 0.9), (-0.05, -0.9)])  # x barely moves
            wait_for(lambda: drivers[0].joystick.last_sample.axes[1] != pytest.approx(-0.02), message="sweep")
        else:
            wait_for(lambda: drivers[0].joystick.last_sample is not None, message="sticks at rest")

    try:
        with pytest.raises(ConfigError, match=r"axis x: range 0\.[01]"):
            run_calibration(factory, io.StringIO(), prompt, centre_s=0.4, sweep_s=0.5)
    finally:
        feeding.stop()


def test_calibration_of_a_silent_device_fails():
    spec = j1939_spec(f"excap-joystick-tools-{uuid.uuid4().hex}")
    with pytest.raises(DriverError, match="left: no samples"):
        run_calibration(joystick_factory(spec), io.StringIO(), lambda text: None, centre_s=0.1, sweep_s=0.1)


# -- specs ---------------------------------------------------------------------------------------


def test_specs_build_each_driver_type():
    assert isinstance(make_joystick({"type": "hid", "device": "/dev/input/event99", "axes": ["ABS_X"]},
                                    lambda s: None), HidJoystick)
    serial = make_joystick({"type": "serial", "port": "/dev/ttyUSB9", "protocol": "ascii", "button_count": 6},
                           lambda s: None)
    assert isinstance(serial, SerialJoystick) and serial.config.button_count == 6
    j1939 = make_joystick(j1939_spec("x", use_ejm=True, bitrate=250000), lambda s: None)
    assert isinstance(j1939, J1939BusJoystick) and j1939.axis_names == ("x", "y", "grip_x", "grip_y", "theta")
    assert j1939.health == Health.STOPPED


def test_open_joystick_opens_the_driver():
    seen = []
    driver = open_joystick({"type": "sim", "rate_hz": 200}, seen.append)
    try:
        assert isinstance(driver, SimJoystick)
        wait_for(lambda: seen, message="a simulated sample")
        assert len(seen[0].axes) == 4
    finally:
        driver.close()
    assert driver.health == Health.STOPPED


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "gamepad"}, r"unknown type 'gamepad'"),
    ({"device": "/dev/input/event3"}, r"unknown type None"),
    ({"type": "hid", "device": "/dev/x", "colour": "red"}, r"\(hid\): unknown key 'colour'"),
    ({"type": "serial"}, r"\(serial\): missing key 'port'"),
    ({"type": "serial", "port": "/dev/x", "baudrate": "fast"}, r"baudrate: expected an integer"),
    ({"type": "serial", "port": "/dev/x", "protocol": "modbus"}, r"protocol: expected one of exjs1, ascii"),
    ({"type": "j1939", "name": "l", "source_address": 19, "interface": "virtual"}, r"missing key 'channel'"),
    ({"type": "j1939", "name": "l", "source_address": 300, "interface": "virtual", "channel": "c"},
     r"source address 300"),
    ({"type": "j1939", "name": "l", "source_address": 19, "interface": "virtual", "channel": "c", "use_ejm": 1},
     r"use_ejm: expected true or false"),
    ({"type": "hid", "device": "/dev/x", "axes": ["ABS_NOPE"]}, r"unknown axis code 'ABS_NOPE'"),
])
def test_bad_specs(spec, expected):
    with pytest.raises(ConfigError, match=expected):
        joystick_factory(spec)


def test_unopenable_bus_is_a_driver_error():
    with pytest.raises(DriverError, match="cannot open CAN bus"):
        open_joystick(j1939_spec("x", interface="no-such-interface"), lambda s: None)
