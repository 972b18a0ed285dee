"""A token bucket limiting the bytes read for upload per second (`--max-rate 2MB/s`)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

from excap.core.errors import ConfigError

UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000 ** 2, "GB": 1000 ** 3, "KIB": 1024, "MIB": 1024 ** 2,
         "GIB": 1024 ** 3, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*(?:/\s*s)?\s*$")


def parse_rate(text: str) -> float:
    """Bytes per second from '2MB/s', '500KB/s', '1MiB/s', '250000' (decimal units: 1 MB = 10^6 B)."""
    match = _RATE.match(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in UNITS or float(match.group(1)) <= 0:
        raise ConfigError(f"--max-rate {text!r}: expected a positive rate such as 2MB/s, 500KB/s or 1MiB/s")
    return float(match.group(1)) * UNITS[unit]


class TokenBucket:
    """`rate` bytes per second on average, bursts up to `burst` bytes."""

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4, 64 * 1024)
        self.tokens = self.burst
        self.clock, self.sleep = clock, sleep
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self, count: int) -> None:
        """Waits until `count` bytes may pass (a count above the burst is paid in debt)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= count
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
