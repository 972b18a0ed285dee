"""The executor interface: `map_tasks(fn, tasks, *, retries)` runs `fn(task)` for every task and yields one
`TaskOutcome` per task (its index, the task, and the result or the error), in task order or as completed.

Three executors share it: `SerialExecutor` (in this process, one after the other), `ProcessExecutor` (local
worker processes) and `RayExecutor` (excap.cluster.ray_engine: a Ray cluster joined by address, or a local one).
An exception raised by `fn` is that task's error; it is not retried. A worker process that is lost (killed,
crashed) is retried up to `retries` more times: the map completes, and only a task that lost its worker more
often than that reports an error.

`fn` and the tasks must be picklable (top-level functions, `functools.partial` of them, dataclasses).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from excap.core.errors import ConfigError, ExcapError

T = TypeVar("T")
R = TypeVar("R")

DEFAULT_RETRIES = 2


class TaskFailed(ExcapError):
    """A task raised, or lost its worker more often than it may be retried."""


@dataclass(frozen=True)
class TaskOutcome(Generic[T, R]):
    index: int  # the task's position in the list given to map_tasks
    task: T
    result: R | None = None
    error: str = ""  # one line: what the task raised, or that its worker was lost

    @property
    def ok(self) -> bool:
        return not self.error

    def unwrap(self) -> R:
        """The result; TaskFailed (the task's error) if it failed."""
        if self.error:
            raise TaskFailed(self.error)
        return self.result  # type: ignore[return-value]


def call_task(fn: Callable[[Any], Any], task: Any) -> tuple[bool, Any]:
    """Runs one task in a worker: (True, result), or (False, one line naming the error) if it raised."""
    try:
        return True, fn(task)
    except Exception as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        return False, text if isinstance(exc, ExcapError) else f"{type(exc).__name__}: {text}"


def in_order(outcomes: Iterable[TaskOutcome[T, R]], count: int) -> Iterator[TaskOutcome[T, R]]:
    """Outcomes arriving in any order, yielded by task index (held back until the earlier ones arrived)."""
    held: dict[int, TaskOutcome[T, R]] = {}
    following = 0
    for outcome in outcomes:
        held[outcome.index] = outcome
        while following in held:
            yield held.pop(following)
            following += 1
    if following != count:
        raise TaskFailed(f"{count - following - len(held)} tasks gave no outcome")


class Executor(Protocol):
    name: str
    shares_filesystem: bool  # the workers see this machine's files (False: a cluster of other machines)

    def map_tasks(self, fn: Callable[[T], R], tasks: Sequence[T], *, retries: int = DEFAULT_RETRIES,
                  ordered: bool = True) -> Iterator[TaskOutcome[T, R]]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class _Closing:
    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class SerialExecutor(_Closing):
    """Every task in this process, one after the other (the reference the others must agree with)."""

    name = "serial"
    shares_filesystem = True

    def map_tasks(self, fn: Callable[[T], R], tasks: Sequence[T], *, retries: int = DEFAULT_RETRIES,
                  ordered: bool = True) -> Iterator[TaskOutcome[T, R]]:
        for index, task in enumerate(tasks):
            ok, value = call_task(fn, task)
            yield TaskOutcome(index, task, value if ok else None, "" if ok else value)


class ProcessExecutor(_Closing):
    """Local worker processes (started fresh, `spawn`). A worker that dies breaks Python's pool: the pool is
    started again and every unfinished task is submitted again, each such restart counting as one retry of it."""

    name = "processes"
    shares_filesystem = True

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {workers}")
        self.workers = workers

    def map_tasks(self, fn: Callable[[T], R], tasks: Sequence[T], *, retries: int = DEFAULT_RETRIES,
                  ordered: bool = True) -> Iterator[TaskOutcome[T, R]]:
        outcomes = self._as_completed(fn, list(tasks), retries)
        return in_order(outcomes, len(tasks)) if ordered else outcomes

    def _as_completed(self, fn: Callable[[T], R], tasks: list[T], retries: int) -> Iterator[TaskOutcome[T, R]]:
        unfinished = set(range(len(tasks)))
        lost = [0] * len(tasks)
        context = multiprocessing.get_context("spawn")
        while unfinished:
            with ProcessPoolExecutor(min(self.workers, len(unfinished)), mp_context=context) as pool:
                running: dict[Future[tuple[bool, Any]], int] = {
                    pool.submit(call_task, fn, tasks[i]): i for i in sorted(unfinished)}
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = running.pop(future)
                        try:
                            ok, value = future.result()
                        except BrokenProcessPool:
                            lost[index] += 1
                            if lost[index] <= retries:
                                continue  # submitted again to the next pool
                            ok, value = False, f"its worker process was lost {lost[index]} times"
                        unfinished.discard(index)
                        yield TaskOutcome(index, tasks[index], value if ok else None, "" if ok else value)


__all__ = ["DEFAULT_RETRIES", "Executor", "ProcessExecutor", "SerialExecutor", "TaskFailed", "TaskOutcome",
           "call_task", "in_order"]
