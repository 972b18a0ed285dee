"""Work spread over many processes or machines: one engine for exports and fleet checks.

`excap.cluster.engine` runs a function over a list of tasks (`map_tasks`) in-process, in local processes or on a
Ray cluster (`excap.cluster.ray_engine`, the `fleet` extra), each task costing only itself when its worker is lost;
`excap.cluster.sources` names episodes in a folder or under an `s3://` prefix and gives a task a local copy;
`excap.cluster.remote_export` plans an export of a prefix's episodes from metadata, each task fetching its own;
`excap.cluster.fleet_checks` and `excap.cluster.fleet_report` are the per-episode checks and the fleet report.
"""

from excap.cluster.engine import Executor, ProcessExecutor, SerialExecutor, TaskFailed, TaskOutcome
from excap.cluster.options import EngineOptions, make_executor

__all__ = ["EngineOptions", "Executor", "ProcessExecutor", "SerialExecutor", "TaskFailed", "TaskOutcome",
           "make_executor"]
