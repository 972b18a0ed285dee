"""What every driver shares: a health state, counters, and guarded worker threads.

A device's worker threads run through its `ThreadGuard` (`excap.core.thread_guard`, re-exported here):
an exception that escapes a thread body is never silent. The guard latches it as the device's
`DeviceFault`, logs it once and hands it to every listener (the station records a `fault` event; a
joystick's fault neutralises the commands at once); the device then reports `Health.FAILED`.
"""

import threading
from dataclasses import dataclass, field
from enum import StrEnum

from excap.core.thread_guard import DeviceFault, FaultListener, ThreadGuard, one_line

__all__ = ["DeviceFault", "DriverCounters", "FaultListener", "Health", "ThreadGuard", "one_line"]


class Health(StrEnum):
    OK = "ok"
    STALE = "stale"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"
    FAILED = "failed"  # a worker thread died of an unexpected error (see the device's fault)


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
