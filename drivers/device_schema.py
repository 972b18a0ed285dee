"""The configuration of each device, as declarative models: CAN buses, cameras, joystick options, calibrations.

A station config lists these entries (`excap.station.schema` composes them); the drivers' own
config dataclasses (`CanBusConfig`, `CameraConfig`, `HidJoystickConfig`, ...) are built from them.
Every number has its range from `excap.drivers.limits`.
"""

import re
from typing import Annotated, Any

import can
from pydantic import AfterValidator, Field, WithJsonSchema, model_validator
from pydantic_core import core_schema

from excap.drivers import limits
from excap.drivers.config_schema import ConfigModel, FiniteValues, Flag, Name, Names, Text, choice, invalid, number
from excap.drivers.limits import shown

# -- CAN ----------------------------------------------------------------------------------------------------

CHANNEL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
STANDARD_MASK = 0x7FF
OWN_BUS_KWARGS = ("interface", "channel", "bitrate", "fd", "data_bitrate", "receive_own_messages", "can_filters")
"""Keyword arguments of `can.Bus` that excap sets itself; `extra` must not repeat them."""


def _channel_name(value: str) -> str:
    if not CHANNEL_NAME.match(value):
        raise invalid(f"must be a channel name like 'can0' (letters, digits, _ . -), not {shown(value)}")
    return value


def _stream_name(value: str) -> str:
    if not CHANNEL_NAME.match(value):
        raise invalid(f"must be a stream name like 'cab' (letters, digits, _ . -), not {shown(value)}")
    return value


NAME_SCHEMA = WithJsonSchema({"type": "string", "pattern": CHANNEL_NAME.pattern})
StreamName = Annotated[Name, AfterValidator(_stream_name), NAME_SCHEMA]
"""The name of a device's stream in the episode (`/cameras/<name>`, `/joystick/<name>`)."""


def _interface(value: str) -> str:
    if value not in can.interfaces.VALID_INTERFACES:
        known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
        raise invalid(f"unknown python-can interface {shown(value)} (known: {known})")
    return value


class _StringOrIndex:
    """A non-empty string or a whole number within `limits` (a device index or channel number)."""

    def __init__(self, limits_: limits.Limits, what: str, digits_as_index: bool = False) -> None:
        self.limits = limits_
        self.what = what
        self.digits_as_index = digits_as_index

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(value: Any) -> str | int:
            if isinstance(value, str) and value.strip():
                if self.digits_as_index and value.strip().isdigit():
                    return self._index(value)
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                return self._index(value)
            raise invalid(f"must be {self.what} (got {shown(value)})")

        return core_schema.no_info_plain_validator_function(validate)

    def _index(self, value: Any) -> int:
        number = self.limits.accept(value)
        if number is None:
            raise invalid(f"must be {self.what}; as a number, {self.limits.describe()} (got {shown(value)})")
        return int(number)

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "minLength": 1}, self.limits.json_schema()]}


def _bus_extra(values: dict[str, Any]) -> dict[str, Any]:
    for key in values:
        if key in OWN_BUS_KWARGS:
            own = "filters" if key == "can_filters" else key
            raise invalid(f"set by excap itself; use the entry's `{own}` instead", at=key)
    return values


class CanFilterEntry(ConfigModel):
    """An acceptance filter: frames with `id & can_mask == can_id & can_mask` are kept."""

    can_id: number(limits.CAN_ID)
    """0 .. 0x1FFFFFFF (text such as '0x18FEF100' is read as a number)."""
    can_mask: number(limits.CAN_ID)
    extended: Flag | None = None
    """Also match the frame format: true 29-bit, false 11-bit."""

    @model_validator(mode="after")
    def _standard_ids(self) -> "CanFilterEntry":
        if self.extended is False and (self.can_id > STANDARD_MASK or self.can_mask > STANDARD_MASK):
            raise invalid("a standard (11-bit) filter takes ids and masks up to 0x7FF", at="can_id")
        return self


class CanBusEntry(ConfigModel):
    """One CAN bus, opened with python-can."""

    name: Annotated[Name, AfterValidator(_channel_name), NAME_SCHEMA]
    """Channel name in the episode (`/can/<name>`)."""
    interface: Annotated[Name, AfterValidator(_interface)]
    """Any python-can interface: socketcan, slcan, pcan, kvaser, vector, virtual, ..."""
    channel: Annotated[str | int, _StringOrIndex(limits.Limits(0, 255, integer=True), "a non-empty string or a "
                                                 "channel number")]
    """The interface's channel (can0, /dev/ttyACM0, PCAN_USBBUS1, 0)."""
    bitrate: number(limits.CAN_BITRATE) | None = None
    fd: Flag = False
    data_bitrate: number(limits.CAN_DATA_BITRATE) | None = None
    """CAN FD data phase bit rate (needs fd: true)."""
    receive_own_messages: Flag = False
    filters: list[CanFilterEntry] = Field(default_factory=list)
    dbc: Name | None = None
    """CAN database for decoding (default: the profile's)."""
    extra: Annotated[FiniteValues, AfterValidator(_bus_extra)] = Field(default_factory=dict)
    """Further keyword arguments for `can.Bus`, passed as they are."""
    reconnect_interval_s: number(limits.RECONNECT_INTERVAL_S) = 1.0

    @model_validator(mode="after")
    def _fd_only(self) -> "CanBusEntry":
        if self.data_bitrate is not None and not self.fd:
            raise invalid("only valid with fd: true", at="data_bitrate")
        return self


# -- cameras ------------------------------------------------------------------------------------------------


def _fourcc(value: str) -> str:
    if value and len(value) != 4:
        raise invalid(f"must be 4 characters such as MJPG (got {shown(value)})")
    return value


class CameraEntry(ConfigModel):
    """One camera read through OpenCV (or `sim:<view>`, a view rendered from the simulated machine)."""

    name: StreamName
    """Stream name (`/cameras/<name>`)."""
    source: Annotated[str | int, _StringOrIndex(limits.CAMERA_DEVICE_INDEX, "a device index, /dev/videoN, a URL, "
                                                "a video file or sim:<view>", digits_as_index=True)]
    width: number(limits.CAMERA_SIZE) | None = None
    """Requested width in pixels (omit: the device's own)."""
    height: number(limits.CAMERA_SIZE) | None = None
    fps: number(limits.CAMERA_FPS) | None = None
    """Requested frames per second (omit: the device's own)."""
    backend: number(limits.CAMERA_BACKEND) | None = None
    """A cv2.CAP_* value (default V4L2 for devices, FFMPEG for URLs and files)."""
    fourcc: Annotated[Text, AfterValidator(_fourcc)] = ""
    loop: Flag = False
    """Files: start again at the end."""
    realtime: Flag = True
    """Files: deliver at the file's frame rate."""
    reconnect_interval_s: number(limits.RECONNECT_INTERVAL_S) = 1.0
    stale_after_s: number(limits.CAMERA_STALE_AFTER_S) = 2.0
    max_grab_failures: number(limits.MAX_GRAB_FAILURES) = 3
    stream_timeout_s: number(limits.STREAM_TIMEOUT_S) = 5.0


# -- joystick driver options ------------------------------------------------------------------------------


def _raw_range(value: tuple[int, int]) -> tuple[int, int]:
    if not value[0] < value[1]:
        raise invalid(f"min must be below max (got {value[0]}, {value[1]})")
    return value


RawRange = Annotated[tuple[number(limits.HID_RAW_VALUE), number(limits.HID_RAW_VALUE)],  # type: ignore[misc]
                     AfterValidator(_raw_range)]


class HidOptions(ConfigModel):
    """Options of a USB HID joystick (`inputs`, evdev)."""

    device: Name
    """A /dev/input/... path or part of the device's name."""
    axis_ranges: dict[Name, RawRange] = Field(default_factory=dict)
    """Raw [min, max] per axis code, where it differs from the default."""
    default_range: RawRange = (-32768, 32767)
    poll_interval_s: number(limits.POLL_INTERVAL_S) = 0.1
    reconnect_interval_s: number(limits.RECONNECT_INTERVAL_S) = 0.5
    search_dirs: Names = Field(default_factory=lambda: ["/dev/input/by-id", "/dev/input/by-path"])


class SerialOptions(ConfigModel):
    """Options of an industrial serial joystick (pyserial)."""

    port: Name
    """A device path (/dev/ttyUSB0) or any pyserial URL."""
    baudrate: number(limits.SERIAL_BAUDRATE) = 115200
    protocol: choice("exjs1", "ascii") = "exjs1"
    read_timeout_s: number(limits.READ_TIMEOUT_S) = 0.05
    stale_after_s: number(limits.JOYSTICK_STALE_AFTER_S) = 0.1
    reconnect_interval_s: number(limits.RECONNECT_INTERVAL_S) = 0.5
    button_count: number(limits.SERIAL_BUTTON_COUNT) | None = None
    """ascii protocol: buttons per line (default: 4 per hex digit)."""


class J1939Options(ConfigModel):
    """Options of a J1939 joystick (BJM1 / EJM1 from one source address)."""

    source_address: number(limits.SOURCE_ADDRESS)
    use_ejm: Flag = False
    stale_after_s: number(limits.JOYSTICK_STALE_AFTER_S) = 0.1


class SimOptions(ConfigModel):
    """The scripted operator has no options."""


# -- calibration files ------------------------------------------------------------------------------------


class AxisCalibrationEntry(ConfigModel):
    """One axis: raw centre and travel in the driver's [-1, 1] scale, then deadband, expo and inversion."""

    centre: number(limits.CALIBRATION_VALUE)
    min: number(limits.CALIBRATION_VALUE)
    max: number(limits.CALIBRATION_VALUE)
    deadband: number(limits.DEADBAND) = 0.0
    expo: number(limits.EXPO) = 0.0
    invert: Flag = False

    @model_validator(mode="after")
    def _order(self) -> "AxisCalibrationEntry":
        if not self.min < self.centre:
            raise invalid(f"must be below centre ({self.min} >= {self.centre})", at="min")
        if not self.centre < self.max:
            raise invalid(f"must be above centre ({self.max} <= {self.centre})", at="max")
        return self


def _some_axes(axes: dict[str, AxisCalibrationEntry]) -> dict[str, AxisCalibrationEntry]:
    if not axes:
        raise invalid("must calibrate at least one axis")
    return axes


class CalibrationDocument(ConfigModel):
    """A joystick calibration file (`excap joystick calibrate`)."""

    schema_: choice("excap.joystick_calibration") = Field(alias="schema")
    device: Name
    axes: Annotated[dict[Name, AxisCalibrationEntry], AfterValidator(_some_axes)]


