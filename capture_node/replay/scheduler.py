"""Emits samples at the pace they were recorded: sample t is due at start_wall + (t - t_origin) / rate.

Waiting uses `time.monotonic` and `Event.wait`, so `pause()`, `resume()` and `stop()` (from any
thread) take effect at once. Pausing remembers the replay position; resuming restarts the timing
from there, so the samples after a pause keep their recorded spacing (no burst). A replay that
falls more than `resync_after_s` behind (a stalled process) restarts its timing at the late
sample instead of rushing to catch up. A stretch of recorded time without samples longer than
`max_gap_s` (a recording paused for a while, or a timestamp far in the future) is shortened to
`max_gap_s`, counted in the statistics and reported through `on_gap`, so a replay never waits for it.

`recorded_now_ns` (the recorded time being replayed, for /clock) never goes past `end_ns`, the end of the replayed
window, and holds where the replay ended once it has.

While it waits for a sample, the scheduler reads and prepares the samples after it (`Lookahead`, at most
`HORIZON_S` of replay ahead) as long as the next one is not due within `PREPARE_MARGIN_S`, so that at the due
time only `emit` is left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from excap.replay.lookahead import HORIZON_S, Lookahead

if TYPE_CHECKING:
    from excap.replay.timeline import Sample

LATE_S = 0.002
MAX_GAP_S = 10.0  # recorded seconds without samples that a replay waits through; longer gaps are shortened
#: Read and prepare samples ahead only while the next one is due later than this (a block read of a stream's rows
#: takes up to about a millisecond).
PREPARE_MARGIN_S = 0.0015


@dataclass
class ReplayStats:
    emitted: dict[str, int] = field(default_factory=dict)
    passes: int = 0
    late: int = 0  # samples emitted more than LATE_S after they were due
    max_late_s: float = 0.0
    resyncs: int = 0
    pauses: int = 0
    paused_s: float = 0.0
    stopped: bool = False  # ended by stop() rather than by running out of samples
    gaps_shortened: int = 0
    gap_s_skipped: float = 0.0  # recorded time left out by shortening gaps

    @property
    def total(self) -> int:
        return sum(self.emitted.values())

    def as_dict(self) -> dict[str, object]:
        return {"samples": self.total, "per_stream": dict(sorted(self.emitted.items())), "passes": self.passes,
                "late": self.late, "max_late_ms": round(self.max_late_s * 1e3, 3), "resyncs": self.resyncs,
                "pauses": self.pauses, "paused_s": round(self.paused_s, 3), "stopped": self.stopped,
                "gaps_shortened": self.gaps_shortened, "gap_s_skipped": round(self.gap_s_skipped, 3)}


class Scheduler:
    def __init__(self, rate: float = 1.0, loop: bool = False, resync_after_s: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, max_gap_s: float = MAX_GAP_S,
                 end_ns: int | None = None) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if not max_gap_s > 0:
            raise ValueError(f"max_gap_s must be positive, not {max_gap_s}")
        self.rate = rate
        self.loop = loop
        self.resync_after_s = resync_after_s
        self.max_gap_ns = round(max_gap_s * 1e9)
        self.end_ns = end_ns
        self.on_gap: Callable[[int, float], None] | None = None  # (t_ns after the gap, recorded gap in s)
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._paused = False
        self._stopped = False
        self._wall0 = 0.0
        self._t0 = 0
        self._pause_position = 0
        self._paused_at = 0.0
        self._anchored = False
        self._held_ns: int | None = None  # where a finished replay holds its recorded time
        self.stats = ReplayStats()
        self.on_pause: Callable[[], None] | None = None  # called from the replay thread when it pauses
        self.on_resume: Callable[[], None] | None = None

    # -- control, from any thread ---------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> bool:
        """Hold the replay at its current position; False if it was already paused."""
        with self._lock:
            if self._paused:
                return False
            now = self.clock()
            self._paused = True
            self._paused_at = now
            self._pause_position = self._position(now)
            self.stats.pauses += 1
        self._wake.set()
        return True

    def resume(self) -> bool:
        """Go on from the position where it paused; False if it was not paused."""
        with self._lock:
            if not self._paused:
                return False
            now = self.clock()
            self._paused = False
            self.stats.paused_s += now - self._paused_at
            self._anchor(now, self._pause_position)
        self._wake.set()
        return True

    def toggle(self) -> bool:
        """Pause if running, resume if paused; returns True if now paused."""
        if not self.pause():
            self.resume()
            return False
        return True

    @property
    def stopped(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    # -- timing ---------------------------------------------------------------------------------

    def _anchor(self, wall: float, t_ns: int) -> None:
        self._wall0, self._t0 = wall, t_ns

    def recorded_now_ns(self) -> int | None:
        """The recorded time being replayed now (held while paused); None until the first sample is due."""
        with self._lock:
            if not self._anchored:
                return None
            if self._held_ns is not None:
                return self._held_ns
            return self._bounded_position()

    def _bounded_position(self) -> int:
        position = self._pause_position if self._paused else self._position(self.clock())
        return position if self.end_ns is None else min(position, self.end_ns)

    def _position(self, wall: float) -> int:
        return self._t0 + round((wall - self._wall0) * self.rate * 1e9)

    def due(self, t_ns: int) -> float:
        """The monotonic time at which a sample recorded at `t_ns` is due."""
        return self._wall0 + (t_ns - self._t0) / 1e9 / self.rate

    def _shorten_gap(self, t_ns: int, gap_ns: int) -> None:
        """Move the timing so that a sample after a long gap is due `max_gap_ns` after the one before it."""
        skipped = gap_ns - self.max_gap_ns
        with self._lock:
            self._t0 += skipped
            if self._paused:
                self._pause_position += skipped
        self.stats.gaps_shortened += 1
        self.stats.gap_s_skipped += skipped / 1e9
        if self.on_gap is not None:
            self.on_gap(t_ns, gap_ns / 1e9)

    def _wait_until_due(self, t_ns: int, ahead: Lookahead | None = None) -> float | None:
        """Wait until `t_ns` is due (asleep while paused, filling `ahead` while there is time); its due time, or
        None once stopped."""
        announced_pause = False
        while True:
            self._wake.clear()
            if self._stopped:
                return None
            with self._lock:
                paused = self._paused
                due = self.due(t_ns)
            if paused:
                if not announced_pause and self.on_pause is not None:
                    self.on_pause()
                announced_pause = True
                self._wake.wait()
                continue
            if announced_pause:
                announced_pause = False
                if self.on_resume is not None:
                    self.on_resume()
                continue
            delay = due - self.clock()
            if delay <= 0:
                return due
            if ahead is not None and delay > PREPARE_MARGIN_S and self._worth_preparing(ahead):
                ahead.fill_one()
                continue
            self._wake.wait(delay)

    def _worth_preparing(self, ahead: Lookahead) -> bool:
        """Room in `ahead`, and what it holds is due within its horizon (never prepared far ahead)."""
        if ahead.full:
            return False
        last = ahead.last_t_ns
        if last is None:
            return True
        with self._lock:
            due = self.due(last)
        return due - self.clock() < HORIZON_S

    def run(self, samples: Iterable[Sample], emit: Callable[[Any], None], origin_ns: int | None = None,
            prepare: Callable[[Sample], Any] | None = None) -> ReplayStats:
        """Emit every sample when due (again and again with `loop`) until done or `stop()`.

        `emit` gets what `prepare` made of the sample ahead of its due time (the sample itself by default).
        `origin_ns` is the recorded time replayed at the start (default: the first sample's)."""
        stats = self.stats
        while not self._stopped:
            stats.passes += 1
            emitted_this_pass = 0
            origin = origin_ns
            previous = origin
            ahead = Lookahead(samples, prepare or _unchanged)
            while not self._stopped:
                head = ahead.head()
                if head is None:
                    break
                sample, prepared = head
                if origin is None:
                    origin = previous = sample.t_ns
                if emitted_this_pass == 0:
                    with self._lock:
                        self._anchor(self.clock(), origin)
                        self._anchored = True
                        self._held_ns = None
                        if self._paused:
                            self._pause_position = origin
                if previous is not None and sample.t_ns - previous > self.max_gap_ns:
                    self._shorten_gap(sample.t_ns, sample.t_ns - previous)
                previous = max(previous, sample.t_ns) if previous is not None else sample.t_ns
                due = self._wait_until_due(sample.t_ns, ahead)
                if due is None:
                    break
                ahead.pop()
                late = self.clock() - due
                if late > self.resync_after_s:
                    with self._lock:
                        self._anchor(self.clock(), sample.t_ns)
                    stats.resyncs += 1
                elif late > LATE_S:
                    stats.late += 1
                stats.max_late_s = max(stats.max_late_s, late)
                emit(prepared)
                emitted_this_pass += 1
                stats.emitted[sample.path] = stats.emitted.get(sample.path, 0) + 1
            if not self.loop or emitted_this_pass == 0:
                break
        with self._lock:
            if self._anchored:
                self._held_ns = self._bounded_position()
        stats.stopped = self._stopped
        return stats


def _unchanged(sample: Sample) -> Sample:
    return sample
