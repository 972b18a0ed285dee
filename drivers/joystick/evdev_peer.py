"""A simulated USB HID joystick: Linux `struct input_event` records written into a FIFO, as evdev delivers them.

Plugging creates the FIFO and holds it open for writing; unplugging closes it (the reader sees end of file)
and removes it, as the kernel removes /dev/input/eventN.
"""

import os
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

EVENT_FORMAT = "llHHi"
"""struct input_event on 64-bit Linux: struct timeval (long sec, long usec), u16 type, u16 code, s32 value."""

EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT, SYN_DROPPED = 0x00, 0x03

CODES = {
    "ABS_X": 0x00, "ABS_Y": 0x01, "ABS_Z": 0x02, "ABS_RX": 0x03, "ABS_RY": 0x04, "ABS_RZ": 0x05,
    "ABS_THROTTLE": 0x06, "ABS_RUDDER": 0x07, "ABS_WHEEL": 0x08, "ABS_GAS": 0x09, "ABS_BRAKE": 0x0A,
    "ABS_HAT0X": 0x10, "ABS_HAT0Y": 0x11,
    "BTN_TRIGGER": 0x120, "BTN_THUMB": 0x121, "BTN_THUMB2": 0x122, "BTN_TOP": 0x123,
    "BTN_SOUTH": 0x130, "BTN_A": 0x130, "BTN_EAST": 0x131, "BTN_B": 0x131, "BTN_C": 0x132,
    "BTN_NORTH": 0x133, "BTN_X": 0x133, "BTN_WEST": 0x134, "BTN_Y": 0x134, "BTN_Z": 0x135,
    "BTN_TL": 0x136, "BTN_TR": 0x137, "BTN_TL2": 0x138, "BTN_TR2": 0x139, "BTN_SELECT": 0x13A,
    "BTN_START": 0x13B, "BTN_MODE": 0x13C, "BTN_THUMBL": 0x13D, "BTN_THUMBR": 0x13E,
}
"""Event codes from linux/input-event-codes.h, kept independent of any reader's tables."""


def encode_event(t_device_ns: int, ev_type: int, code: int, value: int) -> bytes:
    """One input_event record; the time is truncated to microseconds like the kernel's timeval."""
    sec, rest_ns = divmod(t_device_ns, 1_000_000_000)
    return struct.pack(EVENT_FORMAT, sec, rest_ns // 1_000, ev_type, code, value)


def encode_frame(t_device_ns: int, axes: Mapping[str, int] | None = None,
                 buttons: Mapping[str, int] | None = None) -> bytes:
    """Axis and button events then SYN_REPORT, all stamped with one time, as the kernel sends one update."""
    records = [encode_event(t_device_ns, EV_ABS, CODES[name], value) for name, value in (axes or {}).items()]
    records += [encode_event(t_device_ns, EV_KEY, CODES[name], value) for name, value in (buttons or {}).items()]
    records.append(encode_event(t_device_ns, EV_SYN, SYN_REPORT, 0))
    return b"".join(records)


class EvdevPeer:
    """The device side of a FIFO that a HID joystick driver reads as if it were /dev/input/eventN."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def plugged(self) -> bool:
        return self._fd is not None

    def plug(self) -> None:
        """Create the FIFO and open it; read-write so opening never waits for the reader."""
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDWR)

    def unplug(self) -> None:
        """Close (the reader gets end of file) and remove the FIFO."""
        self.close()
        self.remove()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Remove the FIFO from the file system; an open reader keeps its descriptor, as with a vanished node."""
        self.path.unlink(missing_ok=True)

    def write(self, data: bytes) -> None:
        """Raw records, written in one call so a reader never sees half an update (up to PIPE_BUF bytes)."""
        if self._fd is None:
            raise RuntimeError(f"evdev peer {self.path} is not plugged in")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def frame(self, axes: Mapping[str, int] | None = None, buttons: Mapping[str, int] | None = None,
              t_device_ns: int | None = None) -> int:
        """Send one update; returns its timestamp as the reader will see it (ns, whole microseconds)."""
        t_ns = time.time_ns() if t_device_ns is None else t_device_ns  # evdev stamps with CLOCK_REALTIME by default
        self.write(encode_frame(t_ns, axes, buttons))
        return t_ns - t_ns % 1_000

    def dropped(self, t_device_ns: int | None = None) -> None:
        """SYN_DROPPED: the kernel's notice that its buffer overflowed."""
        self.write(encode_event(time.time_ns() if t_device_ns is None else t_device_ns, EV_SYN, SYN_DROPPED, 0))

    def __enter__(self) -> "EvdevPeer":
        self.plug()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unplug()
