"""The Ray executor on a real local cluster (a head and two worker nodes, tests/support/ray_cluster.py): results
per task, in order and as completed, a task's own error, a killed worker process costing only its task, and the
one-line errors of an address that does not answer and of a missing fleet extra."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from excap.cluster.engine import SerialExecutor, TaskOutcome
from excap.cluster.options import EngineOptions, make_executor
from excap.cluster.ray_engine import RayExecutor, probe
from excap.core.errors import ConfigError
from tests.support.imports import run_without
from tests.support.ray_cluster import (
    Blocking,
    RayCluster,
    blocking_square,
    fail_on,
    kill_the_first_run,
    square,
    started_pids,
)
from tests.support.report import record
from tests.support.seaweedfs import free_ports


def test_map_on_the_cluster_agrees_with_serial(ray_cluster: RayCluster) -> None:
    tasks = list(range(9))
    with make_executor(EngineOptions.chosen(None, None, ray_cluster.address)) as executor:
        assert executor.name == "ray"
        ordered = list(executor.map_tasks(fail_on, tasks))
        completed = list(executor.map_tasks(square, tasks, ordered=False))
    assert ordered == list(SerialExecutor().map_tasks(fail_on, tasks))
    assert ordered[3].error == "ValueError: task 3 refuses"
    assert sorted((o.index, o.task, o.result) for o in completed) == [(i, i, i * i) for i in tasks]


def test_a_killed_worker_costs_only_its_task(ray_cluster: RayCluster, tmp_path: Path) -> None:
    tasks = [Blocking(value, str(tmp_path)) for value in range(4)]
    outcomes: list[TaskOutcome[Blocking, tuple[int, int]]] = []

    def run() -> None:
        with RayExecutor(address=ray_cluster.address) as executor:
            outcomes.extend(executor.map_tasks(blocking_square, tasks, retries=2))

    victim, killed_at = kill_the_first_run(run, tmp_path, join_timeout=180)
    assert [o.error for o in outcomes] == [""] * 4
    assert [o.result[0] for o in outcomes if o.result] == [0, 1, 4, 9]
    assert outcomes[0].result is not None and outcomes[0].result[1] != victim  # run again by a new worker
    assert len(started_pids(tmp_path, 0)) == 2 and all(len(started_pids(tmp_path, v)) == 1 for v in (1, 2, 3))
    record("cluster", "Ray: map of 4 tasks done after killing a worker", f"{time.monotonic() - killed_at:.1f} s")


def test_an_address_without_a_cluster_is_one_line_within_seconds() -> None:
    (port,) = free_ports(1)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=rf"^--ray 127.0.0.1:{port}: no Ray cluster answers there"):
        probe(f"127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    with pytest.raises(ConfigError, match="expected HOST:PORT, ray://HOST:PORT or auto"):
        probe("no-port-here")


def test_cli_bad_address_and_missing_extra_are_one_line(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    bad = run_without((), "fleet-report", str(tmp_path), "--ray", f"127.0.0.1:{port}")
    assert bad.stderr.startswith(f"excap: error: --ray 127.0.0.1:{port}: no Ray cluster answers there")
    assert bad.stderr.count("\n") == 1 and bad.returncode == 2 and bad.stdout == ""
    for flags in (["--ray", f"127.0.0.1:{port}"], ["--workers", "2", "--engine", "ray"]):
        missing = run_without(("ray",), "fleet-report", str(tmp_path), *flags)
        flag = flags[0] if flags[0] == "--ray" else "--engine ray"
        assert missing.stderr == (f"excap: error: 'excap fleet-report {flag}' needs the fleet extra: pip install "
                                  "'excap[fleet]'\n")
        assert missing.returncode == 2 and missing.stdout == ""
    assert sorted(tmp_path.iterdir()) == []
