"""The cab-joystick layout both ways: frames the station sends, and what a machine controller reads back."""


import can
import pytest

from excap.core.errors import ConfigError
from excap.drivers.can.joystick_messages import encode_bjm1, encode_ejm1
from excap.drivers.machine.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout, CabJoystickReceiver
from excap.drivers.machine.profiles import load_profile

IDLE = "01 00 01 00 0F 00 00 00"
FUNCTIONS = ("lift", "tilt", "brake")
# A joystick reporting on Y only, one on X only, and the enable on a third, each function once.
LAYOUT = CabJoystickLayout(50.0, (
    CabJoystick("lever", 0x30, x=None, y=CabAxis("lift", -1.0)),
    CabJoystick("tilt", 0x31, x=CabAxis("tilt", 1.0), y=None),
    CabJoystick("pedal", 0x32, x=CabAxis("brake", 1.0), y=None),
), enable_joystick="pedal", enable_button=3)


def hexes(frames: list[can.Message]) -> list[tuple[int, str]]:
    return [(msg.arbitration_id, bytes(msg.data).hex(" ").upper()) for msg in frames]


def test_frames_follow_the_layout_and_an_absent_axis_stays_neutral():
    frames = LAYOUT.frames(FUNCTIONS, (1.0, -1.0, 0.5), True)
    assert hexes(frames) == [
        (0x0CFDD630, "01 00 04 FA 0F 00 00 00"),  # lift +1 -> Y back (sign -1); no X axis: neutral
        (0x0CFDD631, "04 FA 01 00 0F 00 00 00"),  # tilt -1 -> X left
        (0x0CFDD632, "10 7D 01 00 0F 04 00 00"),  # brake 0.5 -> X right 50 %, button 3 (enable)
    ]


def test_disabled_frames_are_neutral_whatever_the_values():
    assert hexes(LAYOUT.frames(FUNCTIONS, (1.0, -1.0, 0.5), False)) == [
        (0x0CFDD630, IDLE), (0x0CFDD631, IDLE), (0x0CFDD632, IDLE)]
    profile = load_profile()
    assert [data for _, data in hexes(profile.cab_joysticks.frames(profile.functions, (0.0,) * 6, False))] == \
        [IDLE] * 3


def test_frames_need_one_value_per_function():
    with pytest.raises(ValueError):
        LAYOUT.frames(FUNCTIONS, (1.0, -1.0), True)


def test_the_layout_checks_names_and_the_enable_joystick():
    lever = CabJoystick("lever", 0x30, None, CabAxis("lift", -1.0))
    with pytest.raises(ConfigError) as caught:
        CabJoystickLayout(50.0, (), "lever", 1)
    assert str(caught.value) == "cab_joysticks.joysticks: must list at least one joystick"
    with pytest.raises(ConfigError) as caught:
        CabJoystickLayout(50.0, (lever,), "pedal", 1)
    assert str(caught.value) == "cab_joysticks.enable.joystick: no joystick 'pedal'"
    with pytest.raises(ConfigError) as caught:
        CabJoystickLayout(50.0, (lever, CabJoystick("lever", 0x31, None, None)), "lever", 1)
    assert str(caught.value) == "cab_joysticks.joysticks.lever: name and source address must be unique"
    with pytest.raises(ConfigError) as caught:
        CabJoystickLayout(50.0, (CabJoystick("lever", 300, None, None),), "lever", 1)
    assert str(caught.value) == ("cab_joysticks.joysticks.lever.source_address: must be a whole number between 0 "
                                 "and 253 (got 300)")


def test_the_receiver_takes_only_its_joysticks_bjm1_frames():
    receiver = CabJoystickReceiver(LAYOUT, FUNCTIONS)
    assert (receiver.frames, receiver.invalid) == (0, 0)
    standard = can.Message(arbitration_id=0x123, is_extended_id=False, data=bytes(8))
    assert receiver.feed(standard, 1) is False
    assert receiver.feed(encode_bjm1(0.2, 0.0, [], 0x40), 1) is False  # not one of its joysticks
    assert receiver.feed(encode_ejm1(0.2, 0.0, 0.0, 0x30), 1) is False  # EJM1 from a known joystick
    assert receiver.feed(encode_bjm1(0.0, 0.0, [], 0x30), 1) is True
    assert receiver.feed(encode_bjm1(0.0, 0.0, [], 0x31), 2) is True
    assert receiver.frames == 2


def test_the_receiver_is_neutral_until_every_joystick_reported_and_while_enable_is_released():
    receiver = CabJoystickReceiver(LAYOUT, (*FUNCTIONS, "horn"))
    neutral = ((0.0, 0.0, 0.0, 0.0), False, 0)
    assert receiver.command() == neutral
    receiver.feed(encode_bjm1(0.0, -1.0, [], 0x30), 10)
    receiver.feed(encode_bjm1(-0.5, 0.0, [], 0x31), 20)
    assert receiver.command() == neutral
    receiver.feed(encode_bjm1(0.25, 0.0, [0, 0, 0], 0x32), 30)
    assert receiver.command() == ((0.0, 0.0, 0.0, 0.0), False, 10)  # enable released: oldest report kept
    receiver.feed(encode_bjm1(0.25, 0.0, [0, 0, 1], 0x32), 40)
    values, enabled, oldest = receiver.command()
    assert values == pytest.approx((1.0, -0.5, 0.25, 0.0)) and enabled is True and oldest == 10
    assert values[3] == 0.0 and isinstance(values[3], float)  # a function no joystick sends stays 0


def test_an_axis_in_error_makes_the_receiver_neutral_and_is_counted():
    receiver = CabJoystickReceiver(LAYOUT, FUNCTIONS)
    broken = encode_bjm1(0.0, 0.0, [], 0x30)
    data = bytearray(broken.data)
    data[2] = (data[2] & 0b11111100) | 0b10  # Y neutral status: error
    receiver.feed(can.Message(arbitration_id=broken.arbitration_id, is_extended_id=True, data=bytes(data)), 1)
    receiver.feed(encode_bjm1(0.5, 0.0, [], 0x31), 2)
    receiver.feed(encode_bjm1(0.0, 0.0, [0, 0, 1], 0x32), 3)
    assert receiver.command() == ((0.0, 0.0, 0.0), False, 0)
    assert receiver.command() == ((0.0, 0.0, 0.0), False, 0)
    assert receiver.invalid == 2  # each refused command is counted
