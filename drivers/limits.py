"""The range of every number a user can configure, in one table.

The configuration schema (`excap.drivers.config_schema` and the document models built on it) takes its
ranges from here, so they appear in the JSON Schema, and the runtime objects (`CommandLinkConfig`,
`CameraConfig`, `CabJoystickLayout`, ...) check the same ranges again when they are built. A value
outside its range, NaN or infinite is refused with one line:
`must be a finite number between 10 and 1000 (got nan)`.
"""

import math
from dataclasses import dataclass
from typing import Any

from excap.core.errors import ConfigError


def shown(value: Any) -> str:
    """A short rendering of a rejected value for an error line."""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value) if abs(value) < 10**15 else "a huge number"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    return type(value).__name__


def _figure(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))


def as_number(value: Any, integer: bool) -> float | int | None:
    """`value` as a number (text such as '1e3' or '0x2C' too), None when it is not one. Booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if integer:
            try:
                return int(text, 0)
            except ValueError:
                pass
        try:
            value = float(text)
        except ValueError:
            return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if integer:
            return int(value) if value.is_integer() else value
        return value
    return None


@dataclass(frozen=True)
class Limits:
    """A closed range [low, high] (or (low, high] with `low_exclusive`) of finite numbers, or of whole numbers."""

    low: float
    high: float
    integer: bool = False
    low_exclusive: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        if self.low_exclusive:
            return f"{kind} above {_figure(self.low)} and at most {_figure(self.high)}"
        return f"{kind} between {_figure(self.low)} and {_figure(self.high)}"

    def message(self, value: Any) -> str:
        written = isinstance(value, str) and as_number(value, self.integer) is not None
        return f"must be {self.describe()} (got {value.strip() if written else shown(value)})"

    def accept(self, value: Any) -> float | int | None:
        """The value as a number inside the range, None when it is not (NaN, infinite, out of range, not a number)."""
        number = as_number(value, self.integer)
        if number is None or (self.integer and not isinstance(number, int)):
            return None
        if isinstance(number, float) and not math.isfinite(number):
            return None
        below = number <= self.low if self.low_exclusive else number < self.low
        if below or number > self.high:
            return None
        return number if self.integer else float(number)

    def check(self, value: Any, key: str) -> Any:
        """The value as a number; ConfigError `key: must be ...` when it is outside the range."""
        number = self.accept(value)
        if number is None:
            raise ConfigError(f"{key}: {self.message(value)}")
        return number

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        low = int(self.low) if self.integer else self.low
        high = int(self.high) if self.integer else self.high
        schema["exclusiveMinimum" if self.low_exclusive else "minimum"] = low
        schema["maximum"] = high
        return schema


SIGN_VALUES = (1.0, -1.0)


def sign_problem(value: Any) -> str | None:
    """None for exactly +1 or -1, else the message."""
    number = as_number(value, integer=False)
    if number is not None and float(number) in SIGN_VALUES:
        return None
    return f"must be +1 or -1 (got {shown(value)})"


def check_sign(value: Any, key: str) -> float:
    problem = sign_problem(value)
    if problem is not None:
        raise ConfigError(f"{key}: {problem}")
    return float(as_number(value, integer=False))  # type: ignore[arg-type]


# -- the command path (safety) ----------------------------------------------------------------------
COMMAND_RATE_HZ = Limits(1, 200)
"""Cab-joystick frames per second: real machine controllers expect 10..100 Hz (BJM1 is 20..50 Hz)."""
STALE_TIMEOUT_MS = Limits(10, 1000)
"""Operator input older than this neutralises the commands."""
STALE_TIMEOUT_S = Limits(0.01, 1.0)
SOURCE_ADDRESS = Limits(0, 253, integer=True)
"""J1939 source addresses; 254 is the null address and 255 global."""
BJM1_BUTTON = Limits(1, 12, integer=True)
"""Button number in a BJM1 frame (1-based)."""
DEADBAND = Limits(0, 0.5)
EXPO = Limits(0, 1)
HOLD_S = Limits(0, 30)
"""How long a station gesture is held."""

# -- joystick devices -------------------------------------------------------------------------------
JOYSTICK_STALE_AFTER_S = Limits(0.01, 10)
RECONNECT_INTERVAL_S = Limits(0.05, 60)
POLL_INTERVAL_S = Limits(0.001, 1)
READ_TIMEOUT_S = Limits(0.001, 1)
SERIAL_BAUDRATE = Limits(300, 4_000_000, integer=True)
SERIAL_BUTTON_COUNT = Limits(1, 64, integer=True)
HID_RAW_VALUE = Limits(-(2**31), 2**31 - 1, integer=True)
"""Raw evdev axis values are signed 32-bit."""
CALIBRATION_VALUE = Limits(-1, 1)
"""Centre, min and max of a calibration, in the driver's [-1, 1] scale."""
SIM_JOYSTICK_RATE_HZ = Limits(1, 1000)

# -- CAN --------------------------------------------------------------------------------------------
CAN_BITRATE = Limits(5_000, 1_000_000, integer=True)
CAN_DATA_BITRATE = Limits(500_000, 16_000_000, integer=True)
"""CAN FD data phase."""
CAN_ID = Limits(0, 0x1FFFFFFF, integer=True)

# -- cameras ----------------------------------------------------------------------------------------
CAMERA_FPS = Limits(0, 240, low_exclusive=True)
CAMERA_SIZE = Limits(16, 8192, integer=True)
"""Width and height in pixels."""
CAMERA_DEVICE_INDEX = Limits(0, 255, integer=True)
CAMERA_BACKEND = Limits(0, 10_000, integer=True)
"""A `cv2.CAP_*` API identifier."""
CAMERA_STALE_AFTER_S = Limits(0.1, 60)
MAX_GRAB_FAILURES = Limits(1, 1000, integer=True)
STREAM_TIMEOUT_S = Limits(0.1, 60)
JPEG_QUALITY = Limits(1, 100, integer=True)
SIM_CAMERAS = Limits(0, 16, integer=True)

# -- sessions ---------------------------------------------------------------------------------------
DURATION_S = Limits(0, 7 * 86_400, low_exclusive=True)
