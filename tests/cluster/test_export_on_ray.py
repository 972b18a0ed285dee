"""LeRobot exports on a real local Ray cluster (a head and two one-CPU worker nodes, tests/support/ray_cluster.py):
the dataset equals the serial export byte for byte (parquet, meta JSON, videos), also when the worker process
running a task is killed mid-task, and `excap export --ray ADDRESS` runs it. The serial export is the one
tests/compat/test_lerobot_compat.py loads with LeRobot's reader, so byte identity carries that over."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from excap.cli.datasets import main
from excap.cluster.export_parts import parts_map
from excap.cluster.ray_engine import RayExecutor
from excap.datasets.export import lerobot as module
from excap.datasets.export.episode_part import PAUSE_ENV
from excap.datasets.export.lerobot import ExportResult, LeRobotExportOptions, export_lerobot
from tests.support.ray_cluster import RayCluster, started_pids
from tests.support.report import record
from tests.support.waiting import wait_for

CODEC = "libx264"


def options(out: Path, **kwargs: object) -> LeRobotExportOptions:
    return LeRobotExportOptions(out=out, fps=10, partner="oem-test", progress=False, vcodec=CODEC, **kwargs)


def dataset_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and module.WORK_DIR not in p.parts}


@pytest.fixture(scope="module")
def serial_files(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("serial") / "dataset"
    assert export_lerobot(recorded_dir, options(out)).episodes == 2
    return dataset_files(out)


def test_export_on_ray_equals_the_serial_export(ray_cluster: RayCluster, recorded_dir: Path, tmp_path: Path,
                                                serial_files: dict[str, bytes]) -> None:
    out = tmp_path / "ray"
    with RayExecutor(address=ray_cluster.address) as executor:
        result = export_lerobot(recorded_dir, options(out, map_parts=parts_map(executor, retries=2)))
    assert result.episodes == 2
    files = dataset_files(out)
    assert files == serial_files
    assert {name for name in files if name.endswith(".parquet")} >= {
        "data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet"}
    assert sum(name.endswith(".mp4") for name in files) == 2


def test_a_worker_killed_mid_export_costs_only_its_task(ray_cluster: RayCluster, recorded_dir: Path,
                                                        tmp_path: Path, serial_files: dict[str, bytes],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pause = tmp_path / "pause"
    pause.mkdir()
    monkeypatch.setenv(PAUSE_ENV, str(pause))
    out = tmp_path / "ray-killed"
    results: list[ExportResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with RayExecutor(address=ray_cluster.address) as executor:
                results.append(export_lerobot(recorded_dir, options(out, map_parts=parts_map(executor, retries=2))))
        except BaseException as exc:  # reported by the assertions below
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        (victim,) = wait_for(lambda: started_pids(pause, 0), timeout=60, message="episode task 0 on a worker")
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        (pause / "go").touch()
        runner.join(timeout=240)
    assert not runner.is_alive()
    assert errors == [] and len(results) == 1 and results[0].episodes == 2
    runs = started_pids(pause, 0)
    assert victim in runs and len(runs) == 2  # the killed run and the one a new worker made
    assert len(started_pids(pause, 1)) == 1
    assert dataset_files(out) == serial_files
    record("cluster", "Ray: 2-episode LeRobot export done after killing a worker",
           f"{time.monotonic() - killed_at:.1f} s")


def test_the_cli_exports_on_a_running_cluster(ray_cluster: RayCluster, recorded_dir: Path, tmp_path: Path,
                                              serial_files: dict[str, bytes],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["export", str(recorded_dir), "--format", "lerobot", "--out", str(out), "--partner", "oem-test",
                 "--vcodec", CODEC, "--ray", ray_cluster.address, "--no-progress"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert dataset_files(out) == serial_files
