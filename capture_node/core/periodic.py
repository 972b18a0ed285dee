"""Threads that run until stopped: one lifecycle, one pacing rule, one way to fail.

- `Worker`: a named daemon thread running its body until `stop()`. `start()` once; `stop()` is idempotent,
  may be called from the body itself, and joins otherwise. The body runs under a `ThreadGuard`
  (`excap.core.thread_guard`): an exception escaping it is logged once and handed to the guard's listeners
  (`on_error`; a device turns it into a `fault` event and FAILED health), never silent.
- `Cadence`: a fixed grid of ticks `period_s` apart and what a late tick does (`Late`). Usable inline by a
  loop that paces itself (a camera replaying a file), and the grid of every `Periodic`.
- `Periodic`: calls `tick(index)` on a `Cadence`. Each loop declares its `late` policy: `Late.SKIP` skips and
  counts the ticks it missed and never runs them in a burst (sensors, the command link); `Late.REANCHOR`
  runs the late tick at once and restarts the grid from it (simulated physics, the recorder's journal).
  `wake()` runs `on_wake()` at once between ticks (the command link's fault path); `deadline()` may name an
  earlier monotonic time at which to wake by itself.
- `Poller`: calls `poll()` every `interval_s` seconds after the previous call ended (status lines, monitors,
  supervisors: a fixed delay, not a fixed rate).
- `wait_until`: block the calling thread until a condition holds, a stop event is set or a time is up.
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Self

from excap.core.thread_guard import FaultListener, ThreadGuard


class Late(Enum):
    """What a fixed-rate loop does with a tick that comes late (the process was stalled, a tick overran)."""

    SKIP = "skip"
    """Run the latest tick due now, skip (and count) the ones missed before it: never a burst."""
    REANCHOR = "reanchor"
    """Run the late tick at once and restart the grid from it: the next one is a period after it was due."""


def _positive(value: float, what: str) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive finite number of seconds, not {value!r}")
    return float(value)


@dataclass(frozen=True)
class Tick:
    index: int
    """Position on the grid (ticks skipped count too, so `index * period_s` is the tick's time from the start)."""
    missed: int
    """Ticks skipped just before this one (`Late.SKIP`)."""


class Cadence:
    """Ticks `period_s` apart from `start` (monotonic seconds, default now); `late` says what a late tick does."""

    def __init__(self, period_s: float, late: Late, start: float | None = None) -> None:
        self.period_s = _positive(period_s, "period")
        self.late = late
        self.due = time.monotonic() if start is None else start
        """Monotonic time the next tick is due."""
        self.index = 0
        self.skipped = 0
        """Ticks skipped in all (`Late.SKIP`)."""
        self.reanchors = 0
        """Times the grid restarted from a late tick (`Late.REANCHOR`)."""

    def until_due(self, now: float | None = None) -> float:
        """Seconds until the next tick (negative: it is late)."""
        return self.due - (time.monotonic() if now is None else now)

    def take(self, now: float | None = None) -> Tick:
        """The tick due at `now` (call it once `until_due() <= 0`); moves the grid on by the `late` policy."""
        now = time.monotonic() if now is None else now
        missed = 0
        if self.late is Late.SKIP:
            missed = max(0, int((now - self.due) / self.period_s))
            self.index += missed
            self.due += missed * self.period_s
            self.skipped += missed
        tick = Tick(self.index, missed)
        self.index += 1
        self.due += self.period_s
        if self.due < now:  # Late.REANCHOR and more than a period late: the grid restarts from this tick
            self.due = now
            self.reanchors += 1
        return tick


class Worker:
    """A named daemon thread running `body` (or the subclass's `run`) once, under `guard`.

    `guard` is the owner's (a device keeps one guard for all its threads and reopenings); without one the
    worker has its own, named like the worker. `on_error` listens to the guard. `stop`: an event of the
    owner's that stops the worker when set (stopping the worker sets it too).
    """

    def __init__(self, name: str, body: Callable[[], None] | None = None, *, guard: ThreadGuard | None = None,
                 on_error: FaultListener | None = None, stop: threading.Event | None = None) -> None:
        self.name = name
        self.guard = guard if guard is not None else ThreadGuard(name)
        if on_error is not None:
            self.guard.listen(on_error)
        self._body = body
        self._stop = stop if stop is not None else threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        """Started and its thread has not ended."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """A stop was asked for (the body should return)."""
        return self._stop.is_set()

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._thread = threading.Thread(target=self.guard.run, args=(self.run,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the body to return, without waiting for it (safe from any thread, also before `start`)."""
        self._stop.set()
        self._interrupt()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the body to return and wait for it (not when called from the body itself); idempotent.

        False when the thread is still running after `timeout` seconds (it is then abandoned)."""
        self.request_stop()
        return self.join(timeout)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end (not from the body itself); True once it has (or never started)."""
        thread = self._thread
        if thread is None:
            return True
        if thread is not threading.current_thread():
            thread.join(timeout)
        return not thread.is_alive()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (at once) when a stop is asked for."""
        return self._stop.wait(max(0.0, seconds))

    def run(self) -> None:
        """The thread's body: the `body` given, or a subclass's override."""
        if self._body is None:
            raise NotImplementedError(f"{self.name}: no body to run")
        self._body()

    def _interrupt(self) -> None:
        """Wake a body that sleeps elsewhere than in `wait` (subclasses)."""


class Periodic(Worker):
    """`tick(index)` every `period_s` on a `Cadence` with the declared `late` policy.

    The first tick is due when the thread starts (one period later with `first_after_one_period`).
    `on_skip(missed)` hears of skipped ticks. `wake()` makes the thread run `on_wake()` at once if no tick is
    due (a wake is never lost: one that comes while a tick runs is served right after it); `deadline()` is a
    monotonic time at which to wake by itself (inf: none).
    """

    def __init__(self, name: str, period_s: float, tick: Callable[[int], None], *, late: Late,
                 guard: ThreadGuard | None = None, on_error: FaultListener | None = None,
                 on_skip: Callable[[int], None] | None = None, on_wake: Callable[[], None] | None = None,
                 deadline: Callable[[], float] | None = None, first_after_one_period: bool = False) -> None:
        super().__init__(name, guard=guard, on_error=on_error)
        self.period_s = _positive(period_s, f"{name}: period")
        self.first_after_one_period = first_after_one_period
        """The first tick comes one period after the start instead of at once (work that gathers a period's
        worth first, as the recorder's journal does)."""
        self.late = late
        self._tick = tick
        self._on_skip = on_skip
        self._on_wake = on_wake
        self._deadline = deadline
        self._woken = threading.Event()
        self.cadence: Cadence | None = None
        self.ticks = 0
        """Ticks run."""
        self.wakeups = 0
        """Times the thread woke up (for a tick, a wake, a deadline or the stop): it never spins."""

    @property
    def skipped(self) -> int:
        """Ticks skipped because they came late (`Late.SKIP`)."""
        return 0 if self.cadence is None else self.cadence.skipped

    def wake(self) -> None:
        """Run `on_wake` now, between ticks (safe from any thread)."""
        self._woken.set()

    def _interrupt(self) -> None:
        self._woken.set()

    def run(self) -> None:
        first = time.monotonic() + (self.period_s if self.first_after_one_period else 0.0)
        cadence = self.cadence = Cadence(self.period_s, self.late, start=first)
        while not self.stopping:
            wake_at = cadence.due if self._deadline is None else min(cadence.due, self._deadline())
            delay = wake_at - time.monotonic()
            if delay > 0:
                self._woken.wait(delay)
            self._woken.clear()  # what woke it is served below: a wake set from here on wakes the next wait
            self.wakeups += 1
            if self.stopping:
                return
            now = time.monotonic()
            if cadence.until_due(now) <= 0:
                tick = cadence.take(now)
                if tick.missed and self._on_skip is not None:
                    self._on_skip(tick.missed)
                self._tick(tick.index)
                self.ticks += 1
            elif self._on_wake is not None:
                self._on_wake()


class Poller(Worker):
    """`poll()` every `interval_s` seconds, counted from the end of the previous call (the first after one
    interval), until stopped or until `poll()` returns False (it is done)."""

    def __init__(self, name: str, interval_s: float, poll: Callable[[], bool | None], *,
                 guard: ThreadGuard | None = None, on_error: FaultListener | None = None,
                 stop: threading.Event | None = None) -> None:
        super().__init__(name, guard=guard, on_error=on_error, stop=stop)
        self.interval_s = _positive(interval_s, f"{name}: interval")
        self._poll = poll

    def run(self) -> None:
        while not self.wait(self.interval_s):
            if self._poll() is False:
                return


def wait_until(done: Callable[[], object], stop: threading.Event, timeout_s: float | None = None,
               interval_s: float = 0.2) -> None:
    """Block until `done()` is true, `stop` is set or `timeout_s` passed (None: no limit); `done` is checked
    every `interval_s` seconds, `stop` at once."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not done():
        remaining = interval_s if deadline is None else min(interval_s, deadline - time.monotonic())
        if remaining <= 0 or stop.wait(remaining):
            return
