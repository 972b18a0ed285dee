"""A real local Ray cluster for the tests: a head (no CPUs, so it runs no tasks) and two worker nodes of one CPU
each, started once per test session with `ray.cluster_utils.Cluster`, small object stores and no dashboard, and
always shut down. This test process joins it as the driver.

The nodes start with the test object store's credentials in their environment (tests/support/seaweedfs.py), as
the machines of a fleet have their own; the endpoint reaches tasks through their options.

Task functions the tests run on it live here, so that the workers import them by name: `square`, `fail_on`, and
`blocking_square` (writes `started-VALUE-PID` into its folder, then waits for the file `go`), which lets a test
find the pid of a worker running a task and kill it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.seaweedfs import credentials_env
from tests.support.waiting import wait_for

NODE_OBJECT_STORE_BYTES = 80 * 1024 * 1024
WORKER_NODES = 2


@dataclass
class RayCluster:
    cluster: Any

    @property
    def address(self) -> str:
        return str(self.cluster.address)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """The session's Ray cluster (head + two one-CPU worker nodes), with this process connected as its driver."""
    import ray
    from ray.cluster_utils import Cluster

    saved = dict(os.environ)
    os.environ.update(credentials_env())
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "object_store_memory": NODE_OBJECT_STORE_BYTES, "include_dashboard": False})
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=1, object_store_memory=NODE_OBJECT_STORE_BYTES)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        wait_for(lambda: ray.cluster_resources().get("CPU", 0) >= WORKER_NODES, timeout=60,
                 message="both worker nodes' CPUs")
        yield RayCluster(cluster)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def square(value: int) -> int:
    return value * value


def fail_on(value: int) -> int:
    if value == 3:
        raise ValueError(f"task {value} refuses")
    return value * value


@dataclass(frozen=True)
class Blocking:
    value: int
    folder: str


def blocking_square(task: Blocking) -> tuple[int, int]:
    """(value², pid of the worker that finished it), once the test has created `go` in the task's folder."""
    folder = Path(task.folder)
    (folder / f"started-{task.value}-{os.getpid()}").touch()
    wait_for(lambda: (folder / "go").exists(), timeout=120, message=f"{folder / 'go'}")
    return task.value * task.value, os.getpid()


def started_pids(folder: Path, value: int) -> list[int]:
    return [int(path.name.rsplit("-", 1)[1]) for path in folder.glob(f"started-{value}-*")]


def kill_the_first_run(job: Callable[[], None], gate: Path, join_timeout: float) -> tuple[int, float]:
    """Run `job` on a thread; once task 0 runs on a worker (its `started-0-PID` file in `gate`), SIGKILL that
    worker, then let every task go on (`gate/go`) and wait for the job. Returns (the killed pid, the monotonic time
    of the kill); fails the test if the job is still running after `join_timeout` seconds."""
    runner = threading.Thread(target=job)
    runner.start()
    try:
        (victim,) = wait_for(lambda: started_pids(gate, 0), timeout=60, message="task 0 running on a worker")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        (gate / "go").touch()
        runner.join(timeout=join_timeout)
    assert not runner.is_alive(), f"the job did not end within {join_timeout} s of the kill"
    return victim, killed_at
