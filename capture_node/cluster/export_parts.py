"""The episode tasks of a dataset export on the engine: `parts_map(executor, retries)` is a LeRobot export's
`map_parts` (excap.datasets.export.executors) that runs the tasks on any executor (serial, local processes, Ray).

Results come back as tasks complete; the export assembles them in plan order, so every engine gives the same
dataset. A task whose worker was lost is run again by the engine (up to `retries` times); a part's files are
written under temporary names and renamed, so a task run again overwrites what the lost one left. A task that
failed for good stops the export with its one-line error (the manifest keeps the parts already made: running the
same command again resumes).

`upload_dataset(folder, target)` stores a finished dataset under an s3:// prefix (`excap export --out s3://...`:
the dataset is assembled in a temporary folder of the machine running the command, then uploaded).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from excap.cluster.engine import Executor
from excap.cluster.sources import OutputTarget
from excap.datasets.export.executors import MapParts
from excap.datasets.export.lerobot import WORK_DIR

Task = TypeVar("Task")
Result = TypeVar("Result")


def parts_map(executor: Executor, retries: int) -> MapParts:
    """`map_parts` on `executor`: results as completed, TaskFailed (one line) for a task that failed."""
    def run(fn: Callable[[Task], Result], tasks: Sequence[Task]) -> Iterator[Result]:
        for outcome in executor.map_tasks(fn, tasks, retries=retries, ordered=False):
            yield outcome.unwrap()
    return run




def upload_dataset(folder: Path, target: str) -> list[str]:
    """Every file of the dataset in `folder` (the export's work folder left out) stored under `target` (an
    s3:// prefix, each object with its SHA-256 in its metadata, checked after the upload; or a folder), in path
    order; the addresses they got."""
    output = OutputTarget.of(target)
    return [output.put(path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*"))
            if path.is_file() and WORK_DIR not in path.relative_to(folder).parts]


__all__ = ["parts_map", "upload_dataset"]
