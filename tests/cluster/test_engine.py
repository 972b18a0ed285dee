"""The executor interface on the serial and local-process engines: results per task, in order or as completed,
a task's own error, and a worker process killed mid-task costing only that task."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from excap.cluster.engine import ProcessExecutor, SerialExecutor, TaskFailed, TaskOutcome, in_order
from excap.cluster.options import EngineOptions
from excap.core.errors import ConfigError
from tests.support.ray_cluster import Blocking, blocking_square, fail_on, square, started_pids
from tests.support.waiting import wait_for


def test_serial_results_in_task_order_with_a_task_error() -> None:
    outcomes = list(SerialExecutor().map_tasks(fail_on, [1, 2, 3, 4]))
    assert [(o.index, o.task, o.result) for o in outcomes] == [(0, 1, 1), (1, 2, 4), (2, 3, None), (3, 4, 16)]
    assert outcomes[2].error == "ValueError: task 3 refuses" and not outcomes[2].ok
    with pytest.raises(TaskFailed, match="task 3 refuses"):
        outcomes[2].unwrap()
    assert outcomes[3].unwrap() == 16


def test_processes_agree_with_serial_in_order_and_as_completed() -> None:
    tasks = list(range(7))
    with ProcessExecutor(2) as executor:
        ordered = list(executor.map_tasks(fail_on, tasks))
        completed = list(executor.map_tasks(square, tasks, ordered=False))
    assert ordered == list(SerialExecutor().map_tasks(fail_on, tasks))
    assert sorted((o.index, o.result) for o in completed) == [(i, i * i) for i in tasks]


def test_a_killed_worker_process_costs_only_its_task(tmp_path: Path) -> None:
    tasks = [Blocking(value, str(tmp_path)) for value in range(4)]
    outcomes: list[TaskOutcome[Blocking, tuple[int, int]]] = []
    runner = threading.Thread(target=lambda: outcomes.extend(ProcessExecutor(2).map_tasks(blocking_square, tasks)))
    runner.start()
    try:
        (victim,) = wait_for(lambda: started_pids(tmp_path, 1), timeout=60, message="task 1 running")
        os.kill(victim, signal.SIGKILL)
    finally:
        (tmp_path / "go").touch()
        runner.join(timeout=120)
    assert not runner.is_alive()
    assert [o.error for o in outcomes] == [""] * 4
    assert [o.result[0] for o in outcomes if o.result] == [0, 1, 4, 9]
    assert outcomes[1].result is not None and outcomes[1].result[1] != victim  # finished by another worker


def test_a_task_that_keeps_losing_its_worker_reports_it(tmp_path: Path) -> None:
    outcomes: list[TaskOutcome[Blocking, tuple[int, int]]] = []
    task = Blocking(5, str(tmp_path))
    runner = threading.Thread(target=lambda: outcomes.extend(
        ProcessExecutor(1).map_tasks(blocking_square, [task], retries=1)))
    runner.start()
    try:
        for attempt in (1, 2):
            wait_for(lambda n=attempt: len(started_pids(tmp_path, 5)) == n, timeout=60, message=f"attempt {attempt}")
            os.kill(max(started_pids(tmp_path, 5), key=lambda pid: (tmp_path / f"started-5-{pid}").stat().st_mtime_ns),
                    signal.SIGKILL)
    finally:
        (tmp_path / "go").touch()
        runner.join(timeout=120)
    assert [o.error for o in outcomes] == ["its worker process was lost 2 times"]


def test_in_order_holds_later_outcomes_back() -> None:
    arriving = [TaskOutcome(2, "c", 3), TaskOutcome(0, "a", 1), TaskOutcome(1, "b", 2)]
    assert [o.index for o in in_order(arriving, 3)] == [0, 1, 2]
    with pytest.raises(TaskFailed, match="1 tasks gave no outcome"):
        list(in_order(arriving[:2], 3))


@pytest.mark.parametrize(("flags", "expected"), [
    ((None, None, None), EngineOptions("serial", 0, "")),
    ((None, 3, None), EngineOptions("processes", 3, "")),
    (("ray", 2, None), EngineOptions("ray", 2, "")),
    ((None, None, "10.0.0.5:6379"), EngineOptions("ray", 0, "10.0.0.5:6379")),
    (("ray", None, "auto"), EngineOptions("ray", 0, "auto")),
])
def test_the_flags_choose_the_engine(flags: tuple[str | None, int | None, str | None],
                                     expected: EngineOptions) -> None:
    assert EngineOptions.chosen(*flags) == expected


@pytest.mark.parametrize(("flags", "message"), [
    (("processes", None, None), "--workers must be at least 1"),
    (("processes", None, "h:1"), "cannot be combined with --engine processes"),
    ((None, 2, "h:1"), "drop --workers"),
    (("gpu", None, None), "--engine must be one of serial, processes, ray"),
])
def test_contradicting_flags_are_one_line(flags: tuple[str | None, int | None, str | None], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        EngineOptions.chosen(*flags)
