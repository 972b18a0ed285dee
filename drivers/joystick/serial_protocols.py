"""Wire protocols of industrial serial joysticks: framed binary EXJS1 and line-oriented ASCII.

Each parser keeps a buffer across `feed` calls, returns the complete frames found so far and
resynchronises after garbage. Byte-level layouts: schemas/protocols/serial_joystick.md.
"""

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

ProtocolName = Literal["exjs1", "ascii"]
PROTOCOLS: tuple[ProtocolName, ...] = ("exjs1", "ascii")

EXJS1_SYNC = b"\xa5\x5a"
EXJS1_AXIS_FULL_SCALE = 32767
EXJS1_HEADER = 4  # sync (2), length (1), sequence (1)
EXJS1_CRC_SIZE = 2
EXJS1_MIN_PAYLOAD = 6  # axis count, button count, u32 timestamp

ASCII_AXIS_FULL_SCALE = 1000
ASCII_TALKER = b"$JOY"
ASCII_MAX_LINE = 512  # bytes from `$` to `\n`, both included
ASCII_MAX_T_US = 0xFFFFFFFF  # the device clock wraps at 2**32 µs
_ASCII_INT = re.compile(r"-?[0-9]+")
_ASCII_UINT = re.compile(r"[0-9]+")
_ASCII_HEX = re.compile(r"[0-9A-Fa-f]+")


@dataclass(frozen=True)
class ParsedFrame:
    """One decoded device update: axes scaled to [-1, 1], buttons 0/1, device time in microseconds."""

    t_device_us: int
    axes: tuple[float, ...]
    buttons: tuple[int, ...]
    seq: int | None = None  # EXJS1 sequence number; None for ASCII


class FrameParser(Protocol):
    bad_frames: int
    garbage_bytes: int
    lost_frames: int

    def feed(self, data: bytes) -> list[ParsedFrame]: ...

    def reset(self) -> None: ...


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def nmea_checksum(body: bytes) -> int:
    """XOR of every byte between '$' and '*' (both excluded)."""
    value = 0
    for byte in body:
        value ^= byte
    return value


def _scale_out(value: float, full_scale: int) -> int:
    return max(-full_scale, min(full_scale, round(value * full_scale)))


def _scale_in(raw: int, full_scale: int) -> float:
    return max(-1.0, min(1.0, raw / full_scale))


def _pack_buttons(buttons: Sequence[int]) -> int:
    bits = 0
    for index, pressed in enumerate(buttons):
        if pressed:
            bits |= 1 << index
    return bits


def _unpack_buttons(bits: int, count: int) -> tuple[int, ...]:
    return tuple((bits >> index) & 1 for index in range(count))


def encode_exjs1(seq: int, t_device_us: int, axes: Sequence[float], buttons: Sequence[int]) -> bytes:
    """One EXJS1 frame. Axes in [-1, 1] (clamped), buttons 0/1, device time wraps at 2**32 µs."""
    if len(axes) > 255 or len(buttons) > 255:
        raise ValueError("EXJS1 carries at most 255 axes and 255 buttons")
    button_bytes = (len(buttons) + 7) // 8
    payload = (bytes([len(axes), len(buttons)])
               + struct.pack(f"<{len(axes)}h", *(_scale_out(a, EXJS1_AXIS_FULL_SCALE) for a in axes))
               + _pack_buttons(buttons).to_bytes(button_bytes, "little")
               + struct.pack("<I", t_device_us & 0xFFFFFFFF))
    if len(payload) > 255:
        raise ValueError(f"EXJS1 payload of {len(payload)} bytes exceeds 255")
    body = bytes([len(payload), seq & 0xFF]) + payload
    return EXJS1_SYNC + body + struct.pack("<H", crc16_ccitt_false(body))


def exjs1_payload_length(axis_count: int, button_count: int) -> int:
    return 2 + 2 * axis_count + (button_count + 7) // 8 + 4


class Exjs1Parser:
    """Incremental EXJS1 decoder; counts bad frames, discarded bytes and sequence gaps."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._last_seq: int | None = None
        self.bad_frames = 0
        self.garbage_bytes = 0
        self.lost_frames = 0

    def reset(self) -> None:
        """Forget buffered bytes and the last sequence number (after a reconnect); keep the counters."""
        self._buffer.clear()
        self._last_seq = None

    def feed(self, data: bytes) -> list[ParsedFrame]:
        self._buffer += data
        frames: list[ParsedFrame] = []
        buf = self._buffer
        while True:
            start = buf.find(EXJS1_SYNC)
            if start < 0:
                keep = 1 if buf[-1:] == EXJS1_SYNC[:1] else 0  # a sync may straddle two reads
                self.garbage_bytes += len(buf) - keep
                del buf[:len(buf) - keep]
                break
            if start:
                self.garbage_bytes += start
                del buf[:start]
            if len(buf) < EXJS1_HEADER + 2:
                break
            length, seq, axis_count, button_count = buf[2], buf[3], buf[4], buf[5]
            if length < EXJS1_MIN_PAYLOAD or length != exjs1_payload_length(axis_count, button_count):
                self._reject()
                continue
            total = EXJS1_HEADER + length + EXJS1_CRC_SIZE
            if len(buf) < total:
                break
            body = bytes(buf[2:EXJS1_HEADER + length])
            (crc,) = struct.unpack_from("<H", buf, EXJS1_HEADER + length)
            if crc != crc16_ccitt_false(body):
                self._reject()
                continue
            frames.append(self._decode(seq, bytes(buf[EXJS1_HEADER:EXJS1_HEADER + length])))
            del buf[:total]
        return frames

    def _reject(self) -> None:
        """Drop a candidate's sync bytes only: a real frame may start inside what it claimed."""
        self.bad_frames += 1
        del self._buffer[:len(EXJS1_SYNC)]

    def _decode(self, seq: int, payload: bytes) -> ParsedFrame:
        axis_count, button_count = payload[0], payload[1]
        raw_axes = struct.unpack_from(f"<{axis_count}h", payload, 2)
        offset = 2 + 2 * axis_count
        button_bytes = (button_count + 7) // 8
        bits = int.from_bytes(payload[offset:offset + button_bytes], "little")
        (t_device_us,) = struct.unpack_from("<I", payload, offset + button_bytes)
        if self._last_seq is not None:
            gap = (seq - self._last_seq - 1) & 0xFF
            if gap != 0xFF:  # 0xFF: a repeated sequence number, not 255 lost frames
                self.lost_frames += gap
        self._last_seq = seq
        return ParsedFrame(t_device_us=t_device_us,
                           axes=tuple(_scale_in(a, EXJS1_AXIS_FULL_SCALE) for a in raw_axes),
                           buttons=_unpack_buttons(bits, button_count), seq=seq)


def encode_ascii(t_device_us: int, axes: Sequence[float], buttons: Sequence[int]) -> bytes:
    """One ASCII line. Axes in [-1, 1] (clamped) sent as -1000..1000; buttons as hex, 4 per digit."""
    digits = max(1, (len(buttons) + 3) // 4)
    fields = [ASCII_TALKER[1:].decode(), str(t_device_us),
              *(str(_scale_out(a, ASCII_AXIS_FULL_SCALE)) for a in axes),
              f"{_pack_buttons(buttons):0{digits}X}"]
    body = ",".join(fields).encode("ascii")
    return b"$" + body + f"*{nmea_checksum(body):02X}\r\n".encode("ascii")


class AsciiParser:
    """Incremental `$JOY` line decoder; malformed or badly checksummed lines are counted and skipped.

    `button_count` fixes how many buttons a line carries (bits above it are ignored); without it,
    each hex digit of the buttons field stands for 4 buttons.
    """

    def __init__(self, button_count: int | None = None) -> None:
        self.button_count = button_count
        self._buffer = bytearray()
        self.bad_frames = 0
        self.garbage_bytes = 0
        self.lost_frames = 0  # the ASCII protocol has no sequence numbers

    def reset(self) -> None:
        self._buffer.clear()

    def feed(self, data: bytes) -> list[ParsedFrame]:
        self._buffer += data
        frames: list[ParsedFrame] = []
        buf = self._buffer
        while True:
            start = buf.find(b"$")
            if start < 0:
                self.garbage_bytes += len(buf)
                buf.clear()
                break
            if start:
                self.garbage_bytes += start
                del buf[:start]
            end = buf.find(b"\n")
            restart = buf.find(b"$", 1, end if end >= 0 else len(buf))
            if restart > 0:  # a new line began before this one ended: it was cut short
                self.bad_frames += 1
                del buf[:restart]
                continue
            if end < 0:
                if len(buf) > ASCII_MAX_LINE:
                    self.bad_frames += 1
                    buf.clear()
                break
            line = bytes(buf[:end + 1])
            del buf[:end + 1]
            frame = self._parse(line) if len(line) <= ASCII_MAX_LINE else None
            if frame is None:
                self.bad_frames += 1
            else:
                frames.append(frame)
        return frames

    def _parse(self, line: bytes) -> ParsedFrame | None:
        line = line.rstrip(b"\r\n")
        star = line.rfind(b"*")
        if star < 0 or len(line) - star != 3:
            return None
        body, checksum_text = line[1:star], line[star + 1:].decode("ascii", "replace")
        if not _ASCII_HEX.fullmatch(checksum_text) or int(checksum_text, 16) != nmea_checksum(body):
            return None
        try:
            fields = body.decode("ascii").split(",")
        except UnicodeDecodeError:
            return None
        if len(fields) < 3 or fields[0] != ASCII_TALKER[1:].decode():
            return None
        t_text, axis_texts, button_text = fields[1], fields[2:-1], fields[-1]
        if not _ASCII_UINT.fullmatch(t_text) or not _ASCII_HEX.fullmatch(button_text):
            return None
        t_device_us = int(t_text)
        if t_device_us > ASCII_MAX_T_US:
            return None
        if not all(_ASCII_INT.fullmatch(text) for text in axis_texts):
            return None
        raw_axes = [int(text) for text in axis_texts]
        if any(abs(raw) > ASCII_AXIS_FULL_SCALE for raw in raw_axes):
            return None
        count = self.button_count if self.button_count is not None else 4 * len(button_text)
        return ParsedFrame(t_device_us=t_device_us,
                           axes=tuple(raw / ASCII_AXIS_FULL_SCALE for raw in raw_axes),
                           buttons=_unpack_buttons(int(button_text, 16), count))


def make_parser(protocol: ProtocolName, button_count: int | None = None) -> FrameParser:
    if protocol == "exjs1":
        return Exjs1Parser()
    if protocol == "ascii":
        return AsciiParser(button_count)
    raise ValueError(f"unknown serial joystick protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def encode(protocol: ProtocolName, seq: int, t_device_us: int, axes: Sequence[float],
           buttons: Sequence[int]) -> bytes:
    """One frame of either protocol (`seq` is ignored by ASCII)."""
    if protocol == "exjs1":
        return encode_exjs1(seq, t_device_us, axes, buttons)
    if protocol == "ascii":
        return encode_ascii(t_device_us, axes, buttons)
    raise ValueError(f"unknown serial joystick protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
