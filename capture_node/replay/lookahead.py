"""Samples read and prepared ahead of their due time, so that only sending is left when a sample is due.

Reading a sample (a block of rows from the file now and then) and preparing it (a CAN frame, a ROS message)
costs tens of microseconds, a block read a millisecond or more. Done at the due time, that work delays every
sample due in the same burst. The scheduler instead fills this buffer while it waits, whenever the next sample
is not due for a while, and takes the prepared samples out when they are due.

An exception raised while reading or preparing a sample is kept in its place and raised when the replay reaches
it, so every sample before it is still sent on time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from excap.replay.timeline import Sample

#: Samples held prepared at most (a few hundred ms of a busy episode; camera frames are held as bytes).
DEPTH = 512
#: Seconds of replay held prepared at most: with many cameras and little else, 512 samples would hold hundreds of
#: frames (and their messages) in memory.
HORIZON_S = 0.25


class Lookahead:
    """The samples of one pass in order, each with what `prepare` made of it."""

    def __init__(self, samples: Iterable[Sample], prepare: Callable[[Sample], Any], depth: int = DEPTH) -> None:
        self._samples: Iterator[Sample] | None = iter(samples)
        self._prepare = prepare
        self._depth = depth
        self._ready: deque[tuple[Sample, Any]] = deque()
        self._error: BaseException | None = None

    @property
    def full(self) -> bool:
        """True once nothing more can be prepared now (the buffer is full, or the samples have run out)."""
        return self._samples is None or len(self._ready) >= self._depth

    @property
    def last_t_ns(self) -> int | None:
        """The recorded time of the last sample prepared (None when none is held)."""
        return self._ready[-1][0].t_ns if self._ready else None

    def fill_one(self) -> None:
        """Read and prepare the next sample, if there is room and one is left."""
        if self._samples is None or len(self._ready) >= self._depth:
            return
        try:
            sample = next(self._samples, None)
            if sample is None:
                self._samples = None
                return
            self._ready.append((sample, self._prepare(sample)))
        except Exception as exc:  # raised in its turn, after every sample before it
            self._error = exc
            self._samples = None

    def head(self) -> tuple[Sample, Any] | None:
        """The next sample and what was prepared of it (reading it now if none is ready); None at the end."""
        if not self._ready:
            self.fill_one()
        if self._ready:
            return self._ready[0]
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return None

    def pop(self) -> None:
        self._ready.popleft()
