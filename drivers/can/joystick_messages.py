"""SAE J1939 joystick messages: BJM1 (PGN 64982) and EJM1 (PGN 64983), through cantools.

Each axis travels as a 10-bit magnitude (0.1 %/bit) plus three 2-bit status fields (neutral,
negative, positive). Buttons are 2-bit "pressed" statuses. In every 2-bit field 00 is off, 01 on,
10 error and 11 not available; an axis with an error or not-available status, or a magnitude
beyond 100 %, decodes as NaN so that the command path treats it as out of range.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import can
import cantools
from cantools.database.can import Database

from excap.core.errors import ConfigError
from excap.drivers.can.j1939 import J1939Id
from excap.schemas import schema_file

JOYSTICK_DBC = schema_file("can/j1939_joysticks.dbc")
BJM1_PGN = 64982
EJM1_PGN = 64983
BUTTONS = 12
_ON, _OFF = 1, 0

# (signal prefix, negative status name, positive status name) per axis, in message order.
BJM_AXES = (("Joystick1XAxis", "LeverLeftNegative", "LeverRightPositive"),
            ("Joystick1YAxis", "LeverBackNegative", "LeverForwardPositive"))
EJM_AXES = (("Joystick1GripXAxis", "LeftNegative", "RightPositive"),
            ("Joystick1GripYAxis", "BackNegative", "ForwardPositive"),
            ("Joystick1ThetaAxis", "CounterClockwiseNegative", "ClockwisePositive"))


@cache
def joystick_database() -> Database:
    database = cantools.database.load_file(str(JOYSTICK_DBC))
    if not isinstance(database, Database):
        raise ConfigError(f"{JOYSTICK_DBC}: not a CAN database")
    return database


def _axis_signals(prefix: str, negative: str, positive: str, value: float) -> dict[str, float]:
    magnitude = min(100.0, abs(value) * 100.0)
    neutral = magnitude < 0.05
    return {f"{prefix}NeutralPositionStatus": _ON if neutral else _OFF,
            f"{prefix}{negative}PositionStatus": _ON if value < 0 and not neutral else _OFF,
            f"{prefix}{positive}PositionStatus": _ON if value > 0 and not neutral else _OFF,
            f"{prefix}Position": round(magnitude, 1)}


def _axis_value(signals: Mapping[str, float], prefix: str, negative: str, positive: str) -> float:
    statuses = (signals[f"{prefix}NeutralPositionStatus"], signals[f"{prefix}{negative}PositionStatus"],
                signals[f"{prefix}{positive}PositionStatus"])
    magnitude = signals[f"{prefix}Position"]
    if any(s >= 2 for s in statuses) or magnitude > 100.0:
        return math.nan
    neutral, neg, pos = statuses
    if neg == pos == _ON:
        return math.nan
    if neg == _ON:
        return -magnitude / 100.0
    if pos == _ON:
        return magnitude / 100.0
    return 0.0 if neutral == _ON else math.nan


def encode_bjm1(x: float, y: float, buttons: Sequence[int], source_address: int, priority: int = 3) -> can.Message:
    message = joystick_database().get_message_by_name("BJM1")
    signals = {**_axis_signals(*BJM_AXES[0], x), **_axis_signals(*BJM_AXES[1], y),
               "Joystick1XAxisDetentPositionStatus": 0, "Joystick1YAxisDetentPositionStatus": 0}
    for index in range(BUTTONS):
        pressed = index < len(buttons) and bool(buttons[index])
        signals[f"Joystick1Button{index + 1}PressedStatus"] = _ON if pressed else _OFF
    return can.Message(arbitration_id=J1939Id(priority, BJM1_PGN, source_address).arbitration_id(),
                       is_extended_id=True, data=message.encode(signals, scaling=True, padding=True))


def encode_ejm1(grip_x: float, grip_y: float, theta: float, source_address: int, priority: int = 3) -> can.Message:
    message = joystick_database().get_message_by_name("EJM1")
    signals = {**_axis_signals(*EJM_AXES[0], grip_x), **_axis_signals(*EJM_AXES[1], grip_y),
               **_axis_signals(*EJM_AXES[2], theta), "Joystick1GripXAxisDetentPositionStatus": 0,
               "Joystick1GripYAxisDetentPositionStatus": 0, "Joystick1ThetaAxisDetentPositionStatus": 0}
    return can.Message(arbitration_id=J1939Id(priority, EJM1_PGN, source_address).arbitration_id(),
                       is_extended_id=True, data=message.encode(signals, scaling=True, padding=True))


@dataclass(frozen=True)
class JoystickFrame:
    """A decoded BJM1 (axes x, y and 12 buttons) or EJM1 (axes grip x, grip y, theta; no buttons)."""

    pgn: int
    source_address: int
    axes: tuple[float, ...]
    buttons: tuple[int, ...]


def decode_joystick_frame(arbitration_id: int, data: bytes) -> JoystickFrame | None:
    """Decode a BJM1 or EJM1 frame; None for other PGNs or malformed frames."""
    ident = J1939Id.parse(arbitration_id)
    if ident.pgn not in (BJM1_PGN, EJM1_PGN) or len(data) != 8:
        return None
    name = "BJM1" if ident.pgn == BJM1_PGN else "EJM1"
    decoded = joystick_database().get_message_by_name(name).decode(data, decode_choices=False)
    if not isinstance(decoded, dict):  # only container messages decode to a list of parts
        return None
    signals = {key: value for key, value in decoded.items() if isinstance(value, int | float)}
    if name == "BJM1":
        axes = tuple(_axis_value(signals, *axis) for axis in BJM_AXES)
        buttons = tuple(1 if signals[f"Joystick1Button{i + 1}PressedStatus"] == _ON else 0 for i in range(BUTTONS))
    else:
        axes = tuple(_axis_value(signals, *axis) for axis in EJM_AXES)
        buttons = ()
    return JoystickFrame(ident.pgn, ident.source_address, axes, buttons)
