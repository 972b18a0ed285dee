"""What every driver shares: a health state and counters."""

import threading
from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    OK = "ok"
    STALE = "stale"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass
class DriverCounters:
    samples: int = 0
    bad_frames: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_t_ns: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_sample(self, t_ns: int) -> None:
        with self._lock:
            self.samples += 1
            self.last_t_ns = t_ns
