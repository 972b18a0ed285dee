"""A simulated serial joystick: writes EXJS1 or ASCII frames to a file descriptor at a fixed rate.

It behaves like the device end of a serial line: it never blocks on a reader that is not reading
(frames that do not fit are dropped, as a UART would lose them), its device clock is its own
monotonic microseconds wrapping at 2**32, and it can be paused, or made to send arbitrary bytes
between two frames.
"""

import math
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from excap.core.periodic import Late, Periodic
from excap.drivers.joystick.serial_protocols import ProtocolName, encode

StateSource = Callable[[int], tuple[tuple[float, ...], tuple[int, ...]]]
"""frame index -> (axes in [-1, 1], buttons 0/1)"""


def sweep_state(axis_count: int = 4, button_count: int = 8) -> StateSource:
    """Slow sines on the axes and a walking bit on the buttons: every frame differs from the last."""

    def state(index: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
        axes = tuple(round(math.sin(index * 0.05 + k), 3) for k in range(axis_count))
        buttons = tuple(int((index // 10) % max(button_count, 1) == k) for k in range(button_count))
        return axes, buttons

    return state


@dataclass
class SerialPeerConfig:
    protocol: ProtocolName = "exjs1"
    rate_hz: float = 100.0
    write_timeout_s: float = 0.1  # how long one frame may wait for room before it is dropped


class SerialPeer:
    """Writes frames to `fd` (e.g. a pty master) from a thread; `fd` is set non-blocking and not closed."""

    def __init__(self, fd: int, config: SerialPeerConfig | None = None, state: StateSource | None = None) -> None:
        self.fd = fd
        self.config = config or SerialPeerConfig()
        self._state = state or sweep_state()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()
        self._pending = bytearray()
        self._worker: Periodic | None = None
        self._index = 0
        self._start_mono_ns = time.monotonic_ns()
        self.frames_sent = 0
        self.frames_dropped = 0
        self.last_frame: tuple[tuple[float, ...], tuple[int, ...]] | None = None
        self.error: OSError | None = None

    def start(self) -> "SerialPeer":
        os.set_blocking(self.fd, False)
        # Like a device on a loaded host: frames it fell behind on are skipped, never sent in a burst.
        self._worker = Periodic("serial-peer", 1.0 / self.config.rate_hz, self._send_frame, late=Late.SKIP).start()
        return self

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def pause(self) -> None:
        """Stop sending frames (the device went quiet) until `resume`."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def inject(self, data: bytes) -> None:
        """Send `data` verbatim before the next frame."""
        with self._lock:
            self._pending += data

    def _send_frame(self, _tick: int) -> None:
        if not self._running.is_set():
            return
        with self._lock:
            extra, self._pending = bytes(self._pending), bytearray()
        index = self._index
        axes, buttons = self._state(index)
        t_us = ((time.monotonic_ns() - self._start_mono_ns) // 1000) & 0xFFFFFFFF
        frame = encode(self.config.protocol, index & 0xFF, t_us, axes, buttons)
        try:
            sent = self._write(extra + frame)
        except OSError as exc:  # the other end is gone for good (fd closed, hung up)
            self.error = exc
            assert self._worker is not None
            self._worker.request_stop()
            return
        self._index += 1
        if sent:
            self.frames_sent += 1
            self.last_frame = (axes, buttons)
        else:
            self.frames_dropped += 1

    def _write(self, data: bytes) -> bool:
        view = memoryview(data)
        deadline = time.monotonic() + self.config.write_timeout_s
        while view:
            try:
                written = os.write(self.fd, view)
                view = view[written:]
                continue
            except BlockingIOError:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self._worker is not None and self._worker.stopping):
                return False
            select.select([], [self.fd], [], min(remaining, 0.02))
        return True
