"""The joystick driver table: the one place a joystick `type` is turned into its options, config and driver."""

import argparse
import uuid

import can
import pytest

from excap.cli.joystick import joystick_spec
from excap.cli.joystick_tools import joystick_factory
from excap.drivers.joystick.hid_joystick import HidJoystick
from excap.drivers.joystick.j1939_joystick import J1939Joystick
from excap.drivers.joystick.serial_joystick import SerialJoystick
from excap.drivers.joystick.sim_joystick import SimJoystick
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import load_profile
from excap.drivers.sim.machine import SimulatedExcavator
from excap.drivers.sim.scripted_joystick import ScriptedJoystick
from excap.station import schema
from excap.station.config import load_station_config
from excap.station.joystick_types import JOYSTICK_TYPES, JoystickContext, JoystickSetup, joystick_type
from tests.support.paths import REPO
from tests.support.waiting import wait_for


def test_the_station_schema_and_the_tools_take_their_types_from_the_table():
    assert schema.JOYSTICK_TYPES == tuple(JOYSTICK_TYPES) == ("hid", "serial", "j1939", "sim")
    assert {name: kind.options for name, kind in JOYSTICK_TYPES.items()} == schema.DRIVER_OPTIONS
    assert [name for name, kind in JOYSTICK_TYPES.items() if not kind.periodic] == ["hid"]
    with pytest.raises(ValueError, match=r"unknown joystick type 'gamepad' \(known: hid, serial, j1939, sim\)"):
        joystick_type("gamepad")


def test_each_type_builds_its_driver_from_a_station_entry():
    setup = JoystickSetup("left", ("ABS_X", "ABS_Y"), ("BTN_TRIGGER",), {"device": "/dev/input/event99"})
    hid = joystick_type("hid").build(setup, lambda s: None)
    assert isinstance(hid, HidJoystick) and hid.config.axes == ("ABS_X", "ABS_Y") and hid.config.name == "left"
    serial = joystick_type("serial").build(JoystickSetup("console", options={"port": "/dev/ttyUSB9"}), lambda s: None)
    assert isinstance(serial, SerialJoystick) and serial.config.device == "console"
    listeners: list[can.Listener] = []
    j1939 = joystick_type("j1939").build(JoystickSetup("grip", options={"source_address": 0x13}), lambda s: None,
                                         JoystickContext(listen=listeners.append))
    assert isinstance(j1939, J1939Joystick) and len(listeners) == 1
    with pytest.raises(ValueError, match="needs the CAN bus it is read from"):
        joystick_type("j1939").build(JoystickSetup("grip", options={"source_address": 0x13}), lambda s: None)
    sweep = joystick_type("sim").build(JoystickSetup("sim", ("a", "b", "c"), ("enable",)), lambda s: None)
    assert isinstance(sweep, SimJoystick) and sweep.axis_names == ("axis0", "axis1", "axis2")


def test_sim_on_a_simulated_machine_is_the_scripted_operator():
    profile = load_profile()
    bus = can.Bus(interface="virtual", channel=f"excap-registry-{uuid.uuid4().hex[:8]}")
    machine = SimulatedExcavator(bus, profile.dbc_paths[0])
    samples = []
    driver = joystick_type("sim").build(
        JoystickSetup("operator", tuple(profile.axes), tuple(profile.buttons), {"rate_hz": 200.0}), samples.append,
        JoystickContext(machine=machine, mapper=CommandMapper(profile, "iso")))
    try:
        assert isinstance(driver, ScriptedJoystick) and driver.period == pytest.approx(1 / 200.0)
        machine.start()
        driver.open()
        wait_for(lambda: len(samples) > 3, message="scripted operator samples")
        assert len(samples[0].axes) == len(profile.axes) and samples[0].device == "operator"
    finally:
        driver.close()
        machine.stop()
        bus.shutdown()


def test_the_tools_build_a_station_joystick_with_the_station_s_values():
    """`excap joystick monitor --config STATION --device NAME` gets the config the station would build."""
    config = load_station_config(REPO / "examples" / "station_sim.yaml")
    args = argparse.Namespace(config=REPO / "examples" / "station_sim.yaml", device="operator", type=None, set=[])
    spec = joystick_spec(args)
    entry = config.joysticks[0]
    station_config = joystick_type("sim").config(JoystickSetup(entry.name, entry.axes, entry.buttons, entry.options))
    assert spec == {"type": "sim", "name": "operator", "rate_hz": 100.0, "axis_count": 6, "button_count": 3}
    driver = joystick_factory(spec)(lambda s: None)
    assert isinstance(driver, SimJoystick) and driver.config == station_config
