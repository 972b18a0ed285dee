"""The flags that choose where a command's tasks run, shared by `excap fleet-report` and `excap export`:

    (none)                   serial, in this process
    --workers N              N local worker processes
    --workers N --engine ray a local Ray with N worker slots (the fleet extra)
    --ray ADDRESS            join a running Ray cluster (HOST:PORT, ray://HOST:PORT or auto; the fleet extra)
    --retries N              times a task is run again when its worker is lost (default 2)
"""

from __future__ import annotations

import argparse

from excap.cli.arguments import non_negative, positive
from excap.cluster.engine import DEFAULT_RETRIES, Executor
from excap.cluster.options import ENGINES, EngineOptions, make_executor


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("where the tasks run")
    group.add_argument("--engine", choices=ENGINES, default=None,
                       help="serial (default), processes (with --workers) or ray (with --ray or --workers)")
    group.add_argument("--workers", type=positive(int), default=None, metavar="N",
                       help="N local workers: processes, or a local Ray with --engine ray")
    group.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="join a running Ray cluster (HOST:PORT, ray://HOST:PORT or auto)")
    group.add_argument("--retries", type=non_negative(int), default=DEFAULT_RETRIES, metavar="N",
                       help="runs of a task again when its worker is lost (default: %(default)s)")


def engine_options(args: argparse.Namespace) -> EngineOptions:
    return EngineOptions.chosen(args.engine, args.workers, args.ray, int(args.retries))


def open_executor(args: argparse.Namespace, command: str) -> tuple[EngineOptions, Executor]:
    """The options the flags mean and their executor (a context manager); one line if Ray is needed but missing."""
    options = engine_options(args)
    return options, make_executor(options, command)


__all__ = ["add_engine_arguments", "engine_options", "open_executor"]
