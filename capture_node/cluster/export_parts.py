"""The episode tasks of a dataset export on the engine: `parts_map(executor, retries)` is a LeRobot export's
`map_parts` (excap.datasets.export.executors) that runs the tasks on any executor (serial, local processes, Ray).

Results come back as tasks complete; the export assembles them in plan order, so every engine gives the same
dataset. A task whose worker was lost is run again by the engine (up to `retries` times); a part's files are
written under temporary names and renamed, so a task run again overwrites what the lost one left. A task that
failed for good stops the export with its one-line error (the manifest keeps the parts already made: running the
same command again resumes).

On an executor whose workers may not share the machine's filesystem (`Executor.shares_filesystem` False: Ray),
each task writes its part into a temporary folder of its worker's own machine and returns the part's files with
its result (`ShippedPart`); the driver writes them into the export's parts folder, under the same names and with
the same write-then-rename, as each result arrives, before the export reads them. So the workers of a cluster need
no shared filesystem: one episode's part (its parquet table and videos, or its robomimic demo file) travels
through Ray's object store, and the driver holds one part at a time.

`upload_dataset(folder, target)` stores a finished dataset under an s3:// prefix (`excap export --out s3://...`:
the dataset is assembled in a temporary folder of the machine running the command, then uploaded).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from excap.cluster.engine import Executor
from excap.cluster.sources import OutputTarget
from excap.core.scratch import scratch_folder
from excap.datasets.export.executors import MapParts
from excap.datasets.export.lerobot import WORK_DIR

Task = TypeVar("Task", bound="PartTask")
Result = TypeVar("Result")


class PartTask(Protocol):
    """A task writing its part's files under `parts` (EpisodeTask, DemoTask)."""

    @property
    def parts(self) -> Path: ...


@dataclass
class PartFiles(Generic[Result]):
    """A task's result and the files it wrote (path relative to its parts folder -> content)."""

    result: Result
    files: dict[str, bytes]


@dataclass(frozen=True)
class ShippedPart(Generic[Task, Result]):
    """`fn` run on a worker with its parts folder replaced by a temporary folder of the worker's machine; the
    files written there come back with the result (the folder is removed, or by the next task on that machine
    if the worker is killed: excap.core.scratch)."""

    fn: Callable[[Task], Result]

    def __call__(self, task: Task) -> PartFiles[Result]:
        with scratch_folder("excap-part-") as local:
            result = self.fn(dataclasses.replace(task, parts=local))  # type: ignore[type-var]
            files = {path.relative_to(local).as_posix(): path.read_bytes()
                     for path in sorted(local.rglob("*")) if path.is_file()}
        return PartFiles(result, files)


def write_part_files(parts: Path, files: dict[str, bytes]) -> None:
    """Each file of a part written under `parts` (its folders made), atomically: a temporary name, then renamed."""
    for name, content in files.items():
        path = parts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)


def parts_map(executor: Executor, retries: int) -> MapParts:
    """`map_parts` on `executor`: results as completed, TaskFailed (one line) for a task that failed. On an
    executor whose workers may not share this machine's filesystem, the parts' files come back with the results
    and are written here as each arrives."""
    if getattr(executor, "shares_filesystem", True):
        def run(fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
            for outcome in executor.map_tasks(fn, tasks, retries=retries, ordered=False):
                yield outcome.unwrap()
        return run

    def shipped(fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        tasks = list(tasks)
        for outcome in executor.map_tasks(ShippedPart(fn), tasks, retries=retries, ordered=False):
            part: PartFiles[Any] = outcome.unwrap()
            write_part_files(tasks[outcome.index].parts, part.files)
            yield part.result
    return shipped




def upload_dataset(folder: Path, target: str) -> list[str]:
    """Every file of the dataset in `folder` (the export's work folder left out) stored under `target` (an
    s3:// prefix, each object with its SHA-256 in its metadata, checked after the upload; or a folder), in path
    order; the addresses they got."""
    output = OutputTarget.of(target)
    return [output.put(path.relative_to(folder).as_posix(), path) for path in sorted(folder.rglob("*"))
            if path.is_file() and WORK_DIR not in path.relative_to(folder).parts]


__all__ = ["PartFiles", "ShippedPart", "parts_map", "upload_dataset", "write_part_files"]
