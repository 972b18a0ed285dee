"""A camera at the protocol level in shared memory: a frame ring one process writes and others read.

The ring `shm:<name>` is a `multiprocessing.shared_memory` block: a header (magic, width, height, channels, slots,
frame rate, the sequence number of the last frame written) and `slots` frame slots, each a sequence number, the
writer's CLOCK_MONOTONIC time and one BGR image. The writer puts frame `seq` (1, 2, ...) into slot `seq % slots`
whether or not anyone reads it, like a camera that streams at its own rate; a reader that falls more than `slots`
frames behind finds the frames it missed overwritten: those are its drops. Each slot is guarded by its sequence
number (set to 0 while the slot is written, to `seq` after), so a reader never takes a half-written image.

A doorbell FIFO beside the block (`<dir>/<name>.bell`) wakes readers: one byte per frame, never blocking the writer.
"""

import contextlib
import mmap
import os
import select
import stat
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

from excap.core.errors import DriverError

MAGIC = 0x45584352494E4731  # "EXCRING1"
_HEADER = np.dtype([("magic", "<u8"), ("width", "<u4"), ("height", "<u4"), ("channels", "<u4"), ("slots", "<u4"),
                    ("fps", "<f8"), ("head", "<u8")])
_HEADER_BYTES = 64
_SLOT_HEADER_BYTES = 16  # seq uint64, t_ns int64
SHM_DIR = Path("/dev/shm")  # where POSIX shared memory lives on Linux (the rings are Linux-only)


def doorbell_path(name: str) -> Path:
    return SHM_DIR / f"{name}.bell"


@dataclass(frozen=True)
class RingFormat:
    width: int
    height: int
    fps: float
    slots: int = 4
    channels: int = 3

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.channels

    @property
    def slot_bytes(self) -> int:
        return _SLOT_HEADER_BYTES + self.frame_bytes

    @property
    def total_bytes(self) -> int:
        return _HEADER_BYTES + self.slots * self.slot_bytes


@dataclass(frozen=True)
class RingFrame:
    seq: int
    t_ns: int
    image: np.ndarray


class _Views:
    def __init__(self, buffer: "memoryview | mmap.mmap", fmt: RingFormat) -> None:
        self.header = np.ndarray((), _HEADER, buffer, 0)
        self.slot_heads = [np.ndarray((2,), "<u8", buffer, _HEADER_BYTES + i * fmt.slot_bytes)
                           for i in range(fmt.slots)]
        self.images = [np.ndarray((fmt.height, fmt.width, fmt.channels), np.uint8, buffer,
                                  _HEADER_BYTES + i * fmt.slot_bytes + _SLOT_HEADER_BYTES) for i in range(fmt.slots)]


class RingWriter:
    """Creates the ring `name` and writes frames into it (the producer's side). `close()` removes it."""

    def __init__(self, name: str, fmt: RingFormat) -> None:
        self.name = name
        self.format = fmt
        self._shm = shared_memory.SharedMemory(name=name, create=True, size=fmt.total_bytes)
        assert self._shm.buf is not None
        self._views = _Views(self._shm.buf, fmt)
        header = self._views.header
        header["width"], header["height"], header["channels"] = fmt.width, fmt.height, fmt.channels
        header["slots"], header["fps"], header["head"] = fmt.slots, fmt.fps, 0
        header["magic"] = MAGIC
        self._bell_path = doorbell_path(name)
        with contextlib.suppress(FileNotFoundError):
            self._bell_path.unlink()
        os.mkfifo(self._bell_path, 0o600)
        self._bell = os.open(self._bell_path, os.O_RDWR | os.O_NONBLOCK)
        self.seq = 0

    def slot_image(self) -> np.ndarray:
        """The image of the slot the next frame goes into, marked as being written (fill it, then `publish`)."""
        index = (self.seq + 1) % self.format.slots
        self._views.slot_heads[index][0] = 0
        return self._views.images[index]

    def publish(self, t_ns: int) -> int:
        """The frame filled through `slot_image` is frame `seq`; wakes the readers. Returns its seq."""
        self.seq += 1
        head = self._views.slot_heads[self.seq % self.format.slots]
        head[1] = t_ns
        head[0] = self.seq
        self._views.header["head"] = self.seq
        with contextlib.suppress(BlockingIOError):
            os.write(self._bell, b"\x01")
        return self.seq

    def write(self, image: np.ndarray, t_ns: int) -> int:
        self.slot_image()[...] = image
        return self.publish(t_ns)

    def close(self) -> None:
        del self._views
        os.close(self._bell)
        with contextlib.suppress(FileNotFoundError):
            self._bell_path.unlink()
        self._shm.close()
        with contextlib.suppress(FileNotFoundError):
            self._shm.unlink()


class RingReader:
    """Reads the ring `name` (a consumer's side): every frame still in the ring, in order; the rest are drops."""

    def __init__(self, name: str) -> None:
        self.name = name
        # Mapped from /dev/shm directly: attaching through multiprocessing.shared_memory would register the block
        # with this process's resource tracker, which unlinks it when the reader exits (Python < 3.13).
        try:
            fd = os.open(SHM_DIR / name, os.O_RDONLY)
        except FileNotFoundError:
            raise DriverError(f"camera ring shm:{name}: no such shared memory") from None
        try:
            size = os.fstat(fd).st_size
            if size < _HEADER_BYTES:
                raise DriverError(f"camera ring shm:{name}: not an excap frame ring")
            self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        header = np.ndarray((), _HEADER, self._map, 0)
        if int(header["magic"]) != MAGIC:
            self._map.close()
            raise DriverError(f"camera ring shm:{name}: not an excap frame ring")
        self.format = RingFormat(int(header["width"]), int(header["height"]), float(header["fps"]),
                                 int(header["slots"]), int(header["channels"]))
        del header
        if size < self.format.total_bytes:
            self._map.close()
            raise DriverError(f"camera ring shm:{name}: shorter than its header says")
        self._views: _Views | None = _Views(self._map, self.format)
        self._bell = self._open_bell()
        self.next_seq = 0
        """The next frame wanted (0: the next one written after the reader attached)."""
        self.dropped = 0
        self.read = 0

    def _open_bell(self) -> int:
        path = doorbell_path(self.name)
        try:
            if not stat.S_ISFIFO(path.stat().st_mode):
                raise DriverError(f"camera ring shm:{self.name}: {path} is not a FIFO")
        except FileNotFoundError:
            raise DriverError(f"camera ring shm:{self.name}: no doorbell {path}") from None
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK)

    @property
    def head(self) -> int:
        assert self._views is not None
        return int(self._views.header["head"])

    def wait(self, timeout_s: float) -> bool:
        """Block until a frame may be waiting or `timeout_s` passed (True: the doorbell rang)."""
        if self._views is not None and self.next_seq and self.head >= self.next_seq:
            return True
        ready, _, _ = select.select([self._bell], [], [], max(0.0, timeout_s))
        if ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self._bell, 65536)
            return True
        return False

    def take(self) -> list[RingFrame]:
        """Copies of the frames written since the last call that are still in the ring; missed ones count as
        `dropped`."""
        views = self._views
        assert views is not None
        slots = self.format.slots
        head = int(views.header["head"])
        if self.next_seq == 0:
            self.next_seq = head if head else 1
        if head < self.next_seq:
            return []
        oldest = max(self.next_seq, head - slots + 1)
        self.dropped += oldest - self.next_seq
        frames = []
        for seq in range(oldest, head + 1):
            slot = views.slot_heads[seq % slots]
            if int(slot[0]) != seq:
                self.dropped += 1
                continue
            t_ns = int(slot[1])
            image = views.images[seq % slots].copy()
            if int(slot[0]) != seq:  # overwritten while copying
                self.dropped += 1
                continue
            frames.append(RingFrame(seq, t_ns, image))
        self.read += len(frames)
        self.next_seq = head + 1
        return frames

    def close(self) -> None:
        self._views = None
        os.close(self._bell)
        self._map.close()


__all__ = ["RingFormat", "RingFrame", "RingReader", "RingWriter", "doorbell_path"]
