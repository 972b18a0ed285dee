"""The shared worker thread, cadence and poller: real threads, real stalls, conditions waited on."""

import itertools
import threading
import time

import pytest

from excap.core.periodic import Cadence, Late, Periodic, Poller, Tick, Worker, wait_until
from excap.core.thread_guard import DeviceFault, ThreadGuard
from tests.support.report import record
from tests.support.waiting import wait_for

PERIOD = 0.01


class Ticks:
    """What a periodic body saw: (index, monotonic time) per tick."""

    def __init__(self, stall_at: int | None = None, stall_s: float = 0.0) -> None:
        self.seen: list[tuple[int, float]] = []
        self.stall_at = stall_at
        self.stall_s = stall_s

    def __call__(self, index: int) -> None:
        self.seen.append((index, time.monotonic()))
        if index == self.stall_at:
            threading.Event().wait(self.stall_s)  # the tick itself hangs (a blocked send, a slow disk)

    @property
    def indices(self) -> list[int]:
        return [index for index, _ in self.seen]

    def gaps_after(self, index: int) -> list[float]:
        times = [t for i, t in self.seen if i >= index]
        return [b - a for a, b in itertools.pairwise(times)]


# -- the grid, with explicit times ------------------------------------------------------------


def test_a_cadence_on_time_ticks_every_period():
    cadence = Cadence(0.5, Late.SKIP, start=10.0)
    assert cadence.until_due(9.75) == pytest.approx(0.25)
    assert [cadence.take(t) for t in (10.0, 10.5, 11.1)] == [Tick(0, 0), Tick(1, 0), Tick(2, 0)]
    assert (cadence.due, cadence.skipped, cadence.reanchors) == (11.5, 0, 0)


def test_skip_runs_the_latest_tick_due_and_counts_the_ones_missed():
    cadence = Cadence(0.5, Late.SKIP, start=10.0)
    cadence.take(10.0)
    tick = cadence.take(12.2)  # ticks 1, 2, 3 and 4 were due at 10.5 .. 12.0: 1, 2, 3 are skipped
    assert tick == Tick(4, 3)
    assert (cadence.due, cadence.skipped) == (12.5, 3)
    assert cadence.take(12.5) == Tick(5, 0)  # back on the original grid


def test_reanchor_runs_the_late_tick_and_restarts_the_grid_from_it():
    cadence = Cadence(0.5, Late.REANCHOR, start=10.0)
    cadence.take(10.0)
    assert cadence.take(12.2) == Tick(1, 0)
    assert (cadence.due, cadence.reanchors, cadence.skipped) == (12.2, 1, 0)
    assert cadence.take(12.2) == Tick(2, 0)
    assert cadence.due == pytest.approx(12.7)
    assert cadence.take(12.9) == Tick(3, 0) and cadence.reanchors == 1  # less than a period late: same grid


@pytest.mark.parametrize("period", [0.0, -1.0, float("nan"), float("inf")])
def test_a_period_that_would_spin_or_never_tick_is_refused(period):
    with pytest.raises(ValueError, match="positive finite"):
        Cadence(period, Late.SKIP)
    with pytest.raises(ValueError, match="loop: period"):
        Periodic("loop", period, lambda index: None, late=Late.SKIP)


# -- real threads -----------------------------------------------------------------------------


def test_skip_after_a_blocked_tick_skips_and_counts_and_never_bursts():
    ticks = Ticks(stall_at=5, stall_s=6 * PERIOD)
    skipped: list[int] = []
    worker = Periodic("skip-loop", PERIOD, ticks, late=Late.SKIP, on_skip=skipped.append).start()
    try:
        wait_for(lambda: len(ticks.seen) >= 15, message="fifteen ticks")
    finally:
        assert worker.stop()
    assert worker.skipped >= 4 and sum(skipped) == worker.skipped
    indices = ticks.indices
    assert indices[:6] == [0, 1, 2, 3, 4, 5]
    assert indices[6] >= 10  # the ticks due during the stall were skipped, not run
    assert sum(b - a - 1 for a, b in itertools.pairwise(indices)) == worker.skipped
    assert sum(1 for gap in ticks.gaps_after(6) if gap < PERIOD / 4) <= 1  # at most one catch-up, never a burst
    assert worker.ticks == len(ticks.seen)


def test_reanchor_after_a_blocked_tick_runs_late_once_and_keeps_the_spacing_from_there():
    ticks = Ticks(stall_at=3, stall_s=6 * PERIOD)
    worker = Periodic("reanchor-loop", PERIOD, ticks, late=Late.REANCHOR).start()
    try:
        wait_for(lambda: len(ticks.seen) >= 12, message="twelve ticks")
    finally:
        worker.stop()
    assert worker.cadence is not None
    assert ticks.indices == list(range(len(ticks.seen)))  # nothing skipped: the grid moved instead
    assert worker.skipped == 0 and worker.cadence.reanchors >= 1
    gaps = ticks.gaps_after(4)
    assert sum(1 for gap in gaps if gap < PERIOD / 4) <= 1
    assert sorted(gaps)[len(gaps) // 2] > 0.7 * PERIOD


def test_wake_runs_between_ticks_at_once():
    woken = threading.Event()
    ticks = Ticks()
    worker = Periodic("slow-loop", 5.0, ticks, late=Late.SKIP, on_wake=woken.set).start()
    try:
        wait_for(lambda: ticks.seen, message="the first tick")
        latencies = []
        for _ in range(5):
            woken.clear()
            asked = time.monotonic()
            worker.wake()
            assert woken.wait(5.0)
            latencies.append(time.monotonic() - asked)
        assert len(ticks.seen) == 1  # every wake was served before the next tick, due in 5 s
        record("periodic", "wake latency worst ms", round(max(latencies) * 1000, 2))
        assert max(latencies) < 0.5
        assert worker.wakeups == 1 + 5  # the first tick, then one per wake: it never spins
    finally:
        worker.stop()


def test_a_wake_asked_for_while_a_tick_runs_is_served_right_after_it():
    woken = threading.Event()
    worker: Periodic

    def tick(index: int) -> None:
        if index == 0:
            worker.wake()

    worker = Periodic("wake-in-tick", 5.0, tick, late=Late.SKIP, on_wake=woken.set)
    worker.start()
    try:
        assert woken.wait(5.0) and worker.ticks == 1
    finally:
        worker.stop()


def test_a_deadline_wakes_the_loop_by_itself_before_the_next_tick():
    """As the command link does when the current input turns stale: the tick names a time to look again."""
    deadline = [float("inf")]
    wakes: list[float] = []

    def tick(index: int) -> None:
        deadline[0] = time.monotonic() + 0.1

    def on_wake() -> None:
        wakes.append(time.monotonic())
        deadline[0] = float("inf")  # served: no deadline until the next tick names one

    worker = Periodic("deadline-loop", 5.0, tick, late=Late.SKIP, on_wake=on_wake, deadline=lambda: deadline[0])
    worker.start()
    try:
        wait_for(lambda: wakes, message="the deadline's wake")
        assert worker.ticks == 1 and worker.wakeups == 2
        assert wakes[0] - worker.cadence.due + 5.0 >= 0.09  # not before the deadline
    finally:
        worker.stop()


def test_stop_from_inside_the_body_ends_the_thread_without_waiting_for_itself():
    worker: Periodic

    def tick(index: int) -> None:
        if index == 3:
            assert not worker.stop()  # from the body: asks, cannot join itself, returns at once

    worker = Periodic("self-stopping", PERIOD, tick, late=Late.SKIP)
    worker.start()
    wait_for(lambda: not worker.running, message="the thread to end")
    assert worker.ticks == 4 and worker.stopping and not worker.guard.failed
    assert worker.stop() and worker.stop()  # idempotent from outside


def test_an_exception_escaping_the_body_is_reported_once_and_ends_the_thread():
    heard: list[DeviceFault] = []
    guard = ThreadGuard("camera/cab")

    def tick(index: int) -> None:
        if index == 2:
            raise ValueError("bad\nframe")

    worker = Periodic("camera-cab", PERIOD, tick, late=Late.SKIP, guard=guard, on_error=heard.append).start()
    wait_for(lambda: not worker.running, message="the failed thread to end")
    assert worker.ticks == 2
    assert [(f.device, f.error, f.thread) for f in heard] == [("camera/cab", "ValueError: bad frame", "camera-cab")]
    other = Worker("camera-cab-2", lambda: 1 / 0, guard=guard).start()  # the same device fails again
    assert other.join(5.0)
    assert len(heard) == 1 and guard.fault == heard[0]


def test_a_worker_without_a_guard_has_its_own_named_like_it():
    heard: list[DeviceFault] = []
    worker = Worker("station-monitor", lambda: 1 / 0, on_error=heard.append).start()
    assert worker.join(5.0)
    assert [(f.device, f.thread) for f in heard] == [("station-monitor", "station-monitor")]


def test_lifecycle_start_once_stop_before_start_and_twice():
    worker = Periodic("idle", PERIOD, lambda index: None, late=Late.SKIP)
    assert worker.stop() and not worker.started  # nothing to stop yet; it will not run after this
    fresh = Periodic("fresh", PERIOD, lambda index: None, late=Late.SKIP).start()
    with pytest.raises(RuntimeError, match="already started"):
        fresh.start()
    assert fresh.stop() and fresh.stop() and not fresh.running


def test_a_worker_stopped_before_start_returns_at_once_when_started():
    worker = Periodic("stopped-first", PERIOD, lambda index: None, late=Late.SKIP)
    worker.request_stop()
    worker.start()
    assert worker.join(5.0) and worker.ticks == 0


# -- the poller and waiting -------------------------------------------------------------------


def test_a_poller_polls_until_stopped_or_done():
    polls: list[float] = []

    def poll() -> bool:
        polls.append(time.monotonic())
        return len(polls) < 5

    poller = Poller("monitor", PERIOD, poll).start()
    wait_for(lambda: not poller.running, message="the poller to be done")
    assert len(polls) == 5 and not poller.stopping
    owner_stop = threading.Event()
    endless = Poller("status", PERIOD, lambda: None, stop=owner_stop).start()
    owner_stop.set()  # the owner's stop event stops it
    assert endless.join(5.0)


def test_wait_until_returns_when_done_when_stopped_and_when_the_time_is_up():
    stop = threading.Event()
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    wait_until(done.is_set, stop, timeout_s=10.0, interval_s=0.01)
    assert done.is_set()
    threading.Timer(0.05, stop.set).start()
    began = time.monotonic()
    wait_until(lambda: False, stop, timeout_s=10.0, interval_s=5.0)  # the stop is seen at once
    assert stop.is_set() and time.monotonic() - began < 4.0
    began = time.monotonic()
    wait_until(lambda: False, threading.Event(), timeout_s=0.05, interval_s=5.0)
    assert 0.04 < time.monotonic() - began < 4.0
