"""The Ray executor (the `fleet` extra): tasks as Ray tasks with `max_retries`, so a worker process that is lost
costs only its own task, which Ray runs again elsewhere.

`RayExecutor(address=...)` joins a running cluster (`ray start --head` on one machine, `ray start --address` on
the others); `RayExecutor(workers=N)` starts a small local Ray with N worker slots and stops it on close. An
address that does not answer is one line within seconds (Ray itself would retry for minutes). Each task asks for
one CPU, so a cluster runs as many tasks at once as its nodes have CPUs.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

from excap.cluster.engine import DEFAULT_RETRIES, TaskOutcome, call_task
from excap.core.errors import ConfigError
from excap.core.extras import require_extra

T = TypeVar("T")
R = TypeVar("R")

PROBE_TIMEOUT_S = 3.0
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024  # results wait here until read (an export part: one episode's
# files, released once written by the driver); Ray spills what does not fit to disk


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `ray://HOST:PORT`; None for `auto`; ConfigError for anything else."""
    if address == "auto":
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--ray {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """ConfigError (one line) unless something accepts connections at the cluster's address."""
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc})") from exc


class RayExecutor:
    name = "ray"
    shares_filesystem = False  # the nodes of a cluster are other machines

    def __init__(self, address: str = "", workers: int = 0, command: str = "--engine ray") -> None:
        require_extra(command, "fleet", "ray")
        import ray

        self.address = address
        self.owns_ray = False
        if ray.is_initialized():  # this process is already a driver of a cluster (e.g. an embedding program)
            return
        if address:
            probe(address)
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"--ray {address}: cannot join the cluster ({' '.join(str(exc).split())})") from exc
        else:
            # "local": always a new Ray of its own (with no address Ray joins any cluster running on the machine)
            ray.init(address="local", num_cpus=max(1, workers), include_dashboard=False, log_to_driver=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, logging_level=logging.WARNING,
                     configure_logging=False)
        self.owns_ray = True

    def map_tasks(self, fn: Callable[[T], R], tasks: Sequence[T], *, retries: int = DEFAULT_RETRIES,
                  ordered: bool = True) -> Iterator[TaskOutcome[T, R]]:
        import ray

        remote = ray.remote(call_task).options(max_retries=retries, retry_exceptions=False, num_cpus=1)
        tasks = list(tasks)
        function = ray.put(fn)
        refs = [remote.remote(function, task) for task in tasks]
        # a result is released once handed over (no reference left to it), so the object store holds only the
        # results not yet read
        if ordered:
            pending = deque(enumerate(refs))
            refs = []
            while pending:
                index, ref = pending.popleft()
                yield self._outcome(index, tasks[index], ref)
            return
        position = {ref: index for index, ref in enumerate(refs)}
        waiting, refs = refs, []
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            for ref in ready:
                index = position.pop(ref)
                yield self._outcome(index, tasks[index], ref)

    @staticmethod
    def _outcome(index: int, task: Any, ref: Any) -> TaskOutcome[Any, Any]:
        import ray
        from ray.exceptions import RayError

        try:
            ok, value = ray.get(ref)
        except RayError as exc:  # the worker (or its node) was lost more often than the task may be retried
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return TaskOutcome(index, task, None, f"lost on the cluster: {type(exc).__name__}: {first}")
        return TaskOutcome(index, task, value if ok else None, "" if ok else value)

    def close(self) -> None:
        if self.owns_ray:
            import ray

            ray.shutdown()
            self.owns_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


__all__ = ["RayExecutor", "probe"]
