"""How an export runs its per-episode tasks: a `MapParts` callable, `map_parts(fn, tasks) -> iterator of results`.

Results come back in any order (each names its episode's position); the export assembles them in plan order,
so every executor gives the same dataset. `serial` runs tasks in this process; `process_pool(n)` in n local
worker processes, at most 2 n tasks in flight, and cancels what has not started when the caller stops reading
(e.g. a strict export failing on a bad episode). Another executor (e.g. a Ray cluster) plugs in as any callable
of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

Task = TypeVar("Task")
Result = TypeVar("Result")
MapParts = Callable[[Callable[[Task], Result], Sequence[Task]], Iterator[Result]]


def serial(fn: Callable[[Task], Result], tasks: Sequence[Task]) -> Iterator[Result]:
    for task in tasks:
        yield fn(task)


def process_pool(workers: int) -> MapParts:
    """Tasks in `workers` local processes (1: in this process)."""
    if workers <= 1:
        return serial

    def run(fn: Callable[[Task], Result], tasks: Sequence[Task]) -> Iterator[Result]:
        pending: set[Future[Result]] = set()
        queue = iter(tasks)
        pool = ProcessPoolExecutor(max_workers=workers)
        try:
            while True:
                for task in queue:
                    pending.add(pool.submit(fn, task))
                    if len(pending) >= 2 * workers:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return run
