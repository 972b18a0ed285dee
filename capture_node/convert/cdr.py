"""CDR (little-endian, XCDR1 plain, as ROS 2's rmw writes it) encoding of the few ROS 2 messages excap writes.

Hand-written for speed: a camera or CAN stream has thousands of messages per second of recording, and a generic
dynamic encoder is too slow for converting an hour-long episode at many times real time. The layouts are those of
`excap.convert.ros2_msgs`; tests decode every message with mcap-ros2-support's decoder and with rosbags.
"""

import struct
from collections.abc import Sequence

import numpy as np

ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR_LE, no options
_STAMP = struct.Struct("<iI")
_U32 = struct.Struct("<I")
_FRAME_FIELDS = struct.Struct("<I???B")
_FD_FIELDS = struct.Struct("<I??BI")
NS = 1_000_000_000


def stamp(t_ns: int) -> bytes:
    """builtin_interfaces/Time of nanoseconds (struct.error outside int32 seconds)."""
    return _STAMP.pack(t_ns // NS, t_ns % NS)


class Cdr:
    """A message being encoded; alignment counts from the end of the 4-byte encapsulation header."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray(ENCAPSULATION)

    def align(self, size: int) -> None:
        pad = -(len(self.buffer) - 4) % size
        if pad:
            self.buffer += b"\0" * pad

    def header(self, t_ns: int, frame_id: bytes) -> None:
        self.align(4)
        self.buffer += stamp(t_ns)
        self.string(frame_id)

    def string(self, text: bytes) -> None:
        self.align(4)
        self.buffer += _U32.pack(len(text) + 1)
        self.buffer += text
        self.buffer += b"\0"

    def strings(self, texts: Sequence[bytes]) -> None:
        self.align(4)
        self.buffer += _U32.pack(len(texts))
        for text in texts:
            self.string(text)

    def u8(self, value: int) -> None:
        self.buffer.append(value)

    def octets(self, data: bytes) -> None:
        """uint8[] (a sequence: length, then the bytes)."""
        self.align(4)
        self.buffer += _U32.pack(len(data))
        self.buffer += data

    def array(self, values: np.ndarray, dtype: str) -> None:
        """A sequence of numbers (float32 '<f4', int32 '<i4', float64 '<f8')."""
        data = np.asarray(values, dtype=dtype)
        self.align(4)
        self.buffer += _U32.pack(len(data))
        if len(data):
            self.align(data.itemsize)
            self.buffer += data.tobytes()

    def bytes(self) -> bytes:
        return bytes(self.buffer)


def header_prefix(frame_id: bytes) -> bytes:
    """The frame_id part of a std_msgs/Header (after its stamp), which always starts 4-aligned at offset 8."""
    return _U32.pack(len(frame_id) + 1) + frame_id + b"\0"


def can_frame(t_ns: int, frame_id_part: bytes, can_id: int, extended: bool, dlc: int, data: bytes) -> bytes:
    """can_msgs/msg/Frame: classic CAN, 8 data bytes (zero-padded)."""
    head = ENCAPSULATION + stamp(t_ns) + frame_id_part
    pad = b"\0" * (-(len(head) - 4) % 4)
    return head + pad + _FRAME_FIELDS.pack(can_id, False, extended, False, dlc) + data[:8].ljust(8, b"\0")


def can_fd_frame(t_ns: int, frame_id_part: bytes, can_id: int, extended: bool, length: int, data: bytes) -> bytes:
    """ros2_socketcan_msgs/msg/FdFrame: CAN FD, `length` data bytes."""
    head = ENCAPSULATION + stamp(t_ns) + frame_id_part
    pad = b"\0" * (-(len(head) - 4) % 4)
    payload = data[:length]
    # id (4), is_extended, is_error, len (1 each), then the uint8[] length aligned to 4: one pad byte
    return head + pad + struct.pack("<I??BxI", can_id, extended, False, length, len(payload)) + payload


def compressed_image(t_ns: int, frame_id_part: bytes, fmt: bytes, data: bytes) -> bytes:
    cdr = Cdr()
    cdr.buffer += stamp(t_ns)
    cdr.buffer += frame_id_part
    cdr.string(fmt)
    cdr.octets(data)
    return cdr.bytes()


def joy(t_ns: int, frame_id_part: bytes, axes: np.ndarray, buttons: np.ndarray) -> bytes:
    cdr = Cdr()
    cdr.buffer += stamp(t_ns)
    cdr.buffer += frame_id_part
    cdr.array(axes, "<f4")
    cdr.array(buttons, "<i4")
    return cdr.bytes()


def joint_state(t_ns: int, frame_id: bytes, names: Sequence[bytes], position: np.ndarray,
                velocity: np.ndarray | None = None, effort: np.ndarray | None = None) -> bytes:
    cdr = Cdr()
    cdr.header(t_ns, frame_id)
    cdr.strings(names)
    empty = np.zeros(0)
    for values in (position, empty if velocity is None else velocity, empty if effort is None else effort):
        cdr.array(values, "<f8")
    return cdr.bytes()


def diagnostic_array(t_ns: int, frame_id: bytes, statuses: Sequence[tuple[int, bytes, bytes, bytes]]) -> bytes:
    """diagnostic_msgs/msg/DiagnosticArray of (level, name, message, hardware_id) statuses without key values."""
    cdr = Cdr()
    cdr.header(t_ns, frame_id)
    cdr.align(4)
    cdr.buffer += _U32.pack(len(statuses))
    for level, name, message, hardware_id in statuses:
        cdr.u8(level)
        cdr.string(name)
        cdr.string(message)
        cdr.string(hardware_id)
        cdr.align(4)
        cdr.buffer += _U32.pack(0)
    return cdr.bytes()


__all__ = ["Cdr", "can_fd_frame", "can_frame", "compressed_image", "diagnostic_array", "header_prefix", "joint_state",
           "joy", "stamp"]
