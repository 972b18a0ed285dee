"""A bounded, never-blocking hand-off from a driver thread to the writer thread, and a driver's end of a stream."""

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from excap.core.clock import now_ns
from excap.episode.streams import StreamSpec


class DropCountingQueue:
    """Bounded FIFO: `put` never blocks; a full queue drops the new row and counts it.

    Dropping the newest row keeps what is queued contiguous, so a drop shows as one gap.
    """

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("queue capacity must be positive")
        self.capacity = capacity
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self.accepted = 0
        self.dropped = 0
        self._dropped_reported = 0

    def put(self, item: Any) -> bool:
        with self._lock:
            if len(self._items) >= self.capacity:
                self.dropped += 1
                return False
            self._items.append(item)
            self.accepted += 1
            return True

    def drain(self) -> list[Any]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items

    def count_unrecorded(self, count: int) -> None:
        """Rows taken from the queue that were not recorded after all (e.g. the disk reserve was reached):
        counted as dropped, but not reported as new drops (the reason is reported once, elsewhere)."""
        with self._lock:
            self.dropped += count
            self._dropped_reported += count

    def take_new_drops(self) -> int:
        """Drops since the previous call (for drop events)."""
        with self._lock:
            new = self.dropped - self._dropped_reported
            self._dropped_reported = self.dropped
            return new

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class StreamStatus:
    path: str
    accepted: int
    dropped: int
    last_t_ns: int | None
    rate_hz: float


class StreamHandle:
    """A driver's end of one stream."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.queue = DropCountingQueue(spec.queue_capacity)
        self.last_t_ns: int | None = None
        self._rate_mark = (0, now_ns())
        self.rate_hz = 0.0

    def put(self, row: tuple[Any, ...]) -> bool:
        """Queue one row (column order of the spec, `t_ns` first). False if it was dropped."""
        self.last_t_ns = row[0]
        return self.queue.put(row)

    def update_rate(self, t_ns: int) -> None:
        count, since = self._rate_mark
        elapsed = (t_ns - since) / 1e9
        if elapsed >= 0.5:
            self.rate_hz = (self.queue.accepted - count) / elapsed
            self._rate_mark = (self.queue.accepted, t_ns)
