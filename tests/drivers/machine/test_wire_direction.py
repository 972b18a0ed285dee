"""The wire direction of every machine function, pinned by golden frames (schemas/can/cab_controls.md).

A physical stick movement at the operator's station goes through the real command path (profile ->
mapping -> command link -> python-can virtual bus) and must put EXACTLY these J1939 frames on the bus.
Identifiers and data bytes are literals taken from the machines' documented convention, not computed
with the profile or the layout code under test, so flipping any sign in a profile's pattern or in its
`cab_joysticks` fails one of these cases.
"""

import uuid
from dataclasses import dataclass
from pathlib import Path

import can
import pytest
import yaml

from excap.core.clock import now_ns
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, LinkState, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import load_profile
from excap.drivers.sim.machine import SimulatedExcavator
from tests.support.waiting import wait_for

MS = 1_000_000

# BJM1 (PGN 0xFDD6), priority 3, per source address
LEFT, RIGHT, TRAVEL = 0x0CFDD62B, 0x0CFDD62C, 0x0CFDD62D  # excavator
ARM_LEVER, STEERING, PEDALS, FNR = 0x0CFDD62B, 0x0CFDD62C, 0x0CFDD62D, 0x0CFDD62E  # wheel loader

IDLE = "01 00 01 00 0F 00 00 00"  # both axes neutral, no button
ENABLED = "01 00 01 00 0F 40 00 00"  # both axes neutral, button 1 (enable) held
X_LEFT, X_RIGHT = "04 FA 01 00 0F 00 00 00", "10 FA 01 00 0F 00 00 00"
Y_BACK, Y_FORWARD = "01 00 04 FA 0F 00 00 00", "01 00 10 FA 0F 00 00 00"
X_LEFT_ENABLED, X_RIGHT_ENABLED = "04 FA 01 00 0F 40 00 00", "10 FA 01 00 0F 40 00 00"
Y_BACK_ENABLED, Y_FORWARD_ENABLED = "01 00 04 FA 0F 40 00 00", "01 00 10 FA 0F 40 00 00"


@dataclass(frozen=True)
class Movement:
    """A physical movement at the operator's station (enable held) and what the machine must receive."""

    pattern: str
    what: str
    axes: dict[str, float]
    function: str
    command: float  # the machine-function command recorded in /control
    frames: dict[int, str]
    buttons: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.pattern}: {self.what}"


def excavator(pattern: str, what: str, axes: dict[str, float], function: str, command: float,
              **frames: str) -> Movement:
    wire = {LEFT: ENABLED, RIGHT: IDLE, TRAVEL: IDLE}
    wire.update({{"left": LEFT, "right": RIGHT, "travel": TRAVEL}[name]: data for name, data in frames.items()})
    return Movement(pattern, what, axes, function, command, wire)


def loader(pattern: str, what: str, axes: dict[str, float], function: str, command: float,
           buttons: tuple[str, ...] = (), **frames: str) -> Movement:
    wire = {ARM_LEVER: ENABLED, STEERING: IDLE, PEDALS: IDLE, FNR: IDLE}
    wire.update({{"arm": ARM_LEVER, "steering": STEERING, "pedals": PEDALS, "fnr": FNR}[name]: data
                 for name, data in frames.items()})
    return Movement(pattern, what, axes, function, command, wire, buttons)


EXCAVATOR_MOVEMENTS = [
    # ISO 10968: left stick swing / arm, right stick bucket / boom
    excavator("iso", "right stick pulled back", {"right_y": -1.0}, "boom", 1.0, right=Y_BACK),
    excavator("iso", "right stick pushed forward", {"right_y": 1.0}, "boom", -1.0, right=Y_FORWARD),
    excavator("iso", "left stick pulled back", {"left_y": -1.0}, "arm", 1.0, left=Y_BACK_ENABLED),
    excavator("iso", "left stick pushed forward", {"left_y": 1.0}, "arm", -1.0, left=Y_FORWARD_ENABLED),
    excavator("iso", "right stick pushed left", {"right_x": -1.0}, "bucket", 1.0, right=X_LEFT),
    excavator("iso", "right stick pushed right", {"right_x": 1.0}, "bucket", -1.0, right=X_RIGHT),
    excavator("iso", "left stick pushed left", {"left_x": -1.0}, "swing", 1.0, left=X_LEFT_ENABLED),
    excavator("iso", "left stick pushed right", {"left_x": 1.0}, "swing", -1.0, left=X_RIGHT_ENABLED),
    excavator("iso", "left travel lever forward", {"travel_left": 1.0}, "travel_left", 1.0, travel=X_RIGHT),
    excavator("iso", "left travel lever back", {"travel_left": -1.0}, "travel_left", -1.0, travel=X_LEFT),
    excavator("iso", "right travel lever forward", {"travel_right": 1.0}, "travel_right", 1.0, travel=Y_FORWARD),
    excavator("iso", "right travel lever back", {"travel_right": -1.0}, "travel_right", -1.0, travel=Y_BACK),
    # SAE J1177: left stick swing / boom, right stick bucket / arm; the wire is the machine's, unchanged
    excavator("sae", "left stick pulled back", {"left_y": -1.0}, "boom", 1.0, right=Y_BACK),
    excavator("sae", "left stick pushed forward", {"left_y": 1.0}, "boom", -1.0, right=Y_FORWARD),
    excavator("sae", "right stick pulled back", {"right_y": -1.0}, "arm", 1.0, left=Y_BACK_ENABLED),
    excavator("sae", "right stick pushed forward", {"right_y": 1.0}, "arm", -1.0, left=Y_FORWARD_ENABLED),
    excavator("sae", "right stick pushed left", {"right_x": -1.0}, "bucket", 1.0, right=X_LEFT),
    excavator("sae", "right stick pushed right", {"right_x": 1.0}, "bucket", -1.0, right=X_RIGHT),
    excavator("sae", "left stick pushed left", {"left_x": -1.0}, "swing", 1.0, left=X_LEFT_ENABLED),
    excavator("sae", "left stick pushed right", {"left_x": 1.0}, "swing", -1.0, left=X_RIGHT_ENABLED),
    excavator("sae", "left travel lever forward", {"travel_left": 1.0}, "travel_left", 1.0, travel=X_RIGHT),
    excavator("sae", "left travel lever back", {"travel_left": -1.0}, "travel_left", -1.0, travel=X_LEFT),
    excavator("sae", "right travel lever forward", {"travel_right": 1.0}, "travel_right", 1.0, travel=Y_FORWARD),
    excavator("sae", "right travel lever back", {"travel_right": -1.0}, "travel_right", -1.0, travel=Y_BACK),
]

LOADER_MOVEMENTS = [
    loader("single_lever", "lever 1 pulled back", {"lever1_y": -1.0}, "lift", 1.0, arm=Y_BACK_ENABLED),
    loader("single_lever", "lever 1 pushed forward", {"lever1_y": 1.0}, "lift", -1.0, arm=Y_FORWARD_ENABLED),
    loader("single_lever", "lever 1 pushed left", {"lever1_x": -1.0}, "tilt", 1.0, arm=X_LEFT_ENABLED),
    loader("single_lever", "lever 1 pushed right", {"lever1_x": 1.0}, "tilt", -1.0, arm=X_RIGHT_ENABLED),
    loader("single_lever", "steering stick left", {"steer_x": -1.0}, "steer", 1.0, steering=X_LEFT),
    loader("single_lever", "steering stick right", {"steer_x": 1.0}, "steer", -1.0, steering=X_RIGHT),
    loader("single_lever", "accelerator floored", {"throttle_pedal": 1.0}, "throttle", 1.0, pedals=X_RIGHT),
    loader("single_lever", "brake floored", {"brake_pedal": 1.0}, "brake", 1.0, pedals=Y_FORWARD),
    loader("single_lever", "forward selected", {}, "direction", 1.0, ("fnr_forward",), fnr=X_RIGHT),
    loader("single_lever", "reverse selected", {}, "direction", -1.0, ("fnr_reverse",), fnr=X_LEFT),
    loader("two_lever", "lever 1 pulled back", {"lever1_y": -1.0}, "lift", 1.0, arm=Y_BACK_ENABLED),
    loader("two_lever", "lever 1 pushed forward", {"lever1_y": 1.0}, "lift", -1.0, arm=Y_FORWARD_ENABLED),
    loader("two_lever", "lever 2 pulled back", {"lever2_y": -1.0}, "tilt", 1.0, arm=X_LEFT_ENABLED),
    loader("two_lever", "lever 2 pushed forward", {"lever2_y": 1.0}, "tilt", -1.0, arm=X_RIGHT_ENABLED),
    loader("two_lever", "steering stick left", {"steer_x": -1.0}, "steer", 1.0, steering=X_LEFT),
    loader("two_lever", "steering stick right", {"steer_x": 1.0}, "steer", -1.0, steering=X_RIGHT),
    loader("two_lever", "accelerator floored", {"throttle_pedal": 1.0}, "throttle", 1.0, pedals=X_RIGHT),
    loader("two_lever", "brake floored", {"brake_pedal": 1.0}, "brake", 1.0, pedals=Y_FORWARD),
    loader("two_lever", "forward selected", {}, "direction", 1.0, ("fnr_forward",), fnr=X_RIGHT),
    loader("two_lever", "reverse selected", {}, "direction", -1.0, ("fnr_reverse",), fnr=X_LEFT),
]


class VirtualBus:
    def __init__(self) -> None:
        channel = f"excap-wire-{uuid.uuid4().hex}"
        self.station = can.Bus(interface="virtual", channel=channel)
        self.machine = can.Bus(interface="virtual", channel=channel)

    def drain(self) -> list[can.Message]:
        frames = []
        while (msg := self.machine.recv(0)) is not None:
            frames.append(msg)
        return frames

    def close(self) -> None:
        self.station.shutdown()
        self.machine.shutdown()


def frames_for(profile_name: str, movement: Movement) -> tuple[dict[int, str], tuple[float, ...], bool]:
    """The frames one command period puts on the bus for `movement`, and the command recorded for it."""
    profile = load_profile(profile_name)
    commands: list[tuple[tuple[float, ...], bool]] = []
    bus = VirtualBus()
    try:
        link = CommandLink(CommandLinkConfig(rate_hz=50), CommandMapper(profile, movement.pattern),
                           profile.cab_joysticks, send=bus.station.send,
                           on_command=lambda t_ns, values, enabled: commands.append((values, enabled)))
        enable = tuple(int(name == profile.enable_button) for name in profile.buttons)
        link.set_input(OperatorInput((0.0,) * len(profile.axes), enable, 1 * MS))
        link.tick(2 * MS)  # enabled from neutral
        assert link.state == LinkState.ACTIVE
        bus.drain()
        axes = tuple(movement.axes.get(name, 0.0) for name in profile.axes)
        buttons = tuple(int(name == profile.enable_button or name in movement.buttons) for name in profile.buttons)
        link.set_input(OperatorInput(axes, buttons, 3 * MS))
        link.tick(4 * MS)
        received = bus.drain()
    finally:
        bus.close()
    assert all(msg.is_extended_id and msg.dlc == 8 for msg in received)
    wire = {msg.arbitration_id: bytes(msg.data).hex(" ").upper() for msg in received}
    assert len(wire) == len(received)  # one frame per cab joystick
    values, enabled = commands[-1]
    return wire, values, enabled


def check(profile_name: str, movement: Movement) -> None:
    wire, values, enabled = frames_for(profile_name, movement)
    assert wire == movement.frames, movement
    functions = load_profile(profile_name).functions
    expected = tuple(movement.command if f == movement.function else 0.0 for f in functions)
    assert enabled and values == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("movement", EXCAVATOR_MOVEMENTS, ids=str)
def test_excavator_stick_movements_put_the_documented_frames_on_the_wire(movement: Movement) -> None:
    check("excavator_20t", movement)


@pytest.mark.parametrize("movement", LOADER_MOVEMENTS, ids=str)
def test_wheel_loader_control_movements_put_the_documented_frames_on_the_wire(movement: Movement) -> None:
    check("wheel_loader_20t", movement)


def test_every_function_of_every_pattern_is_pinned_in_both_directions():
    for profile_name, movements in (("excavator_20t", EXCAVATOR_MOVEMENTS), ("wheel_loader_20t", LOADER_MOVEMENTS)):
        profile = load_profile(profile_name)
        for pattern in profile.patterns:
            pinned = {(m.function, m.command > 0) for m in movements if m.pattern == pattern}
            bidirectional = {f for f in profile.functions if f not in ("throttle", "brake")}
            wanted = {(f, True) for f in profile.functions} | {(f, False) for f in bidirectional}
            assert pinned == wanted, (profile_name, pattern)


# -- the simulated machine reads the wire with its own wiring ---------------------------------------------


def boom_when_raising(profile_path: Path) -> tuple[float, float]:
    """Hold 'right stick pulled back' (ISO: boom raise) through the wire; the simulated boom before and after."""
    profile = load_profile(profile_path)
    bus = VirtualBus()
    machine = SimulatedExcavator(bus.machine)
    before = machine.state.boom
    hand = {"axes": (0.0,) * 6}

    def operator(t_ns: int, values: tuple[float, ...], enabled: bool) -> None:  # the hand on the sticks, each period
        link.set_input(OperatorInput(hand["axes"], (1, 0, 0), now_ns()))

    link = CommandLink(CommandLinkConfig(rate_hz=50, stale_timeout_s=0.5), CommandMapper(profile, "iso"),
                       profile.cab_joysticks, send=bus.station.send, on_command=operator)
    try:
        machine.start()
        link.set_input(OperatorInput((0.0,) * 6, (1, 0, 0), now_ns()))
        link.start()
        wait_for(lambda: link.state == LinkState.ACTIVE, message="enabled from neutral")
        hand["axes"] = (0.0, 0.0, 0.0, -1.0, 0.0, 0.0)  # ISO: right stick pulled back
        wait_for(lambda: abs(machine.state.boom - before) > 0.05, message="the boom to move")
        return before, machine.state.boom
    finally:
        link.stop()
        machine.stop()
        bus.close()


def test_boom_raise_raises_the_simulated_boom_through_the_wire():
    before, after = boom_when_raising(load_profile("excavator_20t").source)
    assert after > before + 0.05


def test_a_profile_whose_cab_wiring_disagrees_with_the_machine_moves_it_the_wrong_way(tmp_path):
    """The simulated machine reads its cab joysticks with its own wiring: a flipped sign in the profile shows."""
    data = yaml.safe_load(load_profile("excavator_20t").source.read_text())
    data["cab_joysticks"]["joysticks"]["right"]["y"]["sign"] = 1  # the machine sends boom raise as Y back (-)
    flipped = tmp_path / "flipped.yaml"
    flipped.write_text(yaml.safe_dump(data))
    before, after = boom_when_raising(flipped)
    assert after < before - 0.05
