"""The episode tasks of a dataset export on the engine: `parts_map(executor, retries)` is a LeRobot export's
`map_parts` (excap.datasets.export.executors) that runs the tasks on any executor (serial, local processes, Ray).

Results come back as tasks complete; the export assembles them in plan order, so every engine gives the same
dataset. A task whose worker was lost is run again by the engine (up to `retries` times); a part's files are
written under temporary names and renamed, so a task run again overwrites what the lost one left. A task that
failed for good stops the export with its one-line error (the manifest keeps the parts already made: running the
same command again resumes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from excap.cluster.engine import Executor
from excap.datasets.export.executors import MapParts

Task = TypeVar("Task")
Result = TypeVar("Result")


def parts_map(executor: Executor, retries: int) -> MapParts:
    """`map_parts` on `executor`: results as completed, TaskFailed (one line) for a task that failed."""
    def run(fn: Callable[[Task], Result], tasks: Sequence[Task]) -> Iterator[Result]:
        for outcome in executor.map_tasks(fn, tasks, retries=retries, ordered=False):
            yield outcome.unwrap()
    return run


__all__ = ["parts_map"]
