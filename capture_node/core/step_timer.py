"""Seconds spent in each named step of a multi-step operation (the steps of stopping a recording), in order.

    timer = StepTimer()
    with timer.step("devices"):
        ...
    timer.seconds  # {"devices": 0.012, ...}

A step entered twice adds up. The timer is thread-safe: steps may be timed from different threads.
"""

import contextlib
import threading
import time
from collections.abc import Iterator


class StepTimer:
    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time the `with` body as step `name` (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._seconds[name] = self._seconds.get(name, 0.0) + seconds

    @property
    def seconds(self) -> dict[str, float]:
        """Each step's seconds, in the order the steps were first timed."""
        with self._lock:
            return dict(self._seconds)

    @property
    def total_s(self) -> float:
        with self._lock:
            return sum(self._seconds.values())
