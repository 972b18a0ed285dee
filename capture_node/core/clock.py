"""The one clock of a recording: host CLOCK_MONOTONIC nanoseconds, with its offset to UTC."""

import time
from datetime import UTC, datetime


def now_ns() -> int:
    """Host monotonic time in nanoseconds; the `t_ns` of every sample."""
    return time.monotonic_ns()


def utc_offset_ns(samples: int = 5) -> int:
    """Offset such that `t_ns + offset` is UTC nanoseconds since the epoch.

    Takes the reading whose wall-clock read was bracketed most tightly by two monotonic reads.
    """
    best_width = None
    best_offset = 0
    for _ in range(samples):
        before = time.monotonic_ns()
        wall = time.time_ns()
        after = time.monotonic_ns()
        width = after - before
        if best_width is None or width < best_width:
            best_width = width
            best_offset = wall - (before + after) // 2
    return best_offset


def utc_now_iso() -> str:
    """The wall-clock time now as ISO 8601 UTC text to the second (`2026-12-05T10:14:11Z`)."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def utc_iso(t_ns: int, offset_ns: int) -> str:
    """ISO 8601 UTC text for a monotonic time, given the recording's offset."""
    stamp = datetime.fromtimestamp((t_ns + offset_ns) / 1e9, tz=UTC)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
