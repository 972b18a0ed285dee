"""Which engine runs a command's tasks: `EngineOptions` (what the flags `--engine`, `--workers`, `--ray` and
`--retries` mean, see excap.cli.engine_options) and `make_executor`."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

from excap.cluster.engine import DEFAULT_RETRIES, Executor, ProcessExecutor, SerialExecutor
from excap.cluster.ray_engine import RayExecutor
from excap.core.errors import ConfigError

ENGINES = ("serial", "processes", "ray")


@dataclass(frozen=True)
class EngineOptions:
    """Where tasks run: `serial`, `processes` (`workers` local processes), or `ray` (join `address`, or start a
    local Ray with `workers` worker slots)."""

    engine: str = "serial"
    workers: int = 0
    address: str = ""
    retries: int = DEFAULT_RETRIES

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")
        if self.address and self.engine != "ray":
            raise ConfigError("--ray ADDRESS runs on Ray: it cannot be combined with --engine " + self.engine)
        if self.address and self.workers:
            raise ConfigError("--ray ADDRESS joins a running cluster: its size is the cluster's, drop --workers")
        if self.workers < 0 or (self.engine == "processes" and self.workers < 1):
            raise ConfigError(f"--workers must be at least 1, not {self.workers}")
        if self.retries < 0:
            raise ConfigError(f"--retries must be 0 or more, not {self.retries}")

    @classmethod
    def chosen(cls, engine: str | None, workers: int | None, address: str | None,
               retries: int = DEFAULT_RETRIES) -> EngineOptions:
        """The options the command-line flags mean: `--ray ADDRESS` is Ray, `--workers N` alone is N local
        processes, `--engine` picks explicitly; nothing is the serial engine."""
        if engine is None:
            engine = "ray" if address else "processes" if workers else "serial"
        if engine == "ray" and not address and not workers:
            workers = max(1, multiprocessing.cpu_count())
        return cls(engine, workers or 0, address or "", retries)


def make_executor(options: EngineOptions, command: str = "") -> Executor:
    """The executor of `options` (a context manager: leaving it stops what it started, e.g. a local Ray).
    `command` names the command in the one-line error when Ray (the fleet extra) is not installed."""
    if options.engine == "serial":
        return SerialExecutor()
    if options.engine == "processes":
        return ProcessExecutor(options.workers)
    flag = "--ray" if options.address else "--engine ray"
    return RayExecutor(address=options.address, workers=options.workers, command=f"{command} {flag}".strip())


__all__ = ["ENGINES", "EngineOptions", "make_executor"]
