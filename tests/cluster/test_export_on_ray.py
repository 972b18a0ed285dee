"""Exports on a real local Ray cluster (a head and two one-CPU worker nodes, tests/support/ray_cluster.py): a
LeRobot dataset equals the serial export byte for byte (parquet, meta JSON, videos), also when the worker process
running a task is killed mid-task; `excap export --ray ADDRESS` runs it, also from an s3:// prefix to an s3://
prefix (SeaweedFS); robomimic demo parts give the serial export's content (h5py level). The serial LeRobot export
is what tests/compat/test_lerobot_compat.py loads with LeRobot's reader, so byte identity carries that over.
Both exports also work when the workers cannot see the driver's output folder (tests/support/mount_namespace.py):
the parts reach the driver only through Ray."""

from __future__ import annotations

import hashlib
import io
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from excap.cli.datasets import main
from excap.cluster.export_parts import parts_map
from excap.cluster.ray_engine import RayExecutor
from excap.datasets.export import lerobot as module
from excap.datasets.export.episode_part import PAUSE_ENV
from excap.datasets.export.lerobot import ExportResult, LeRobotExportOptions, export_lerobot
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
from tests.support.hdf5_contents import hdf5_contents
from tests.support.mount_namespace import with_driver_only_folder
from tests.support.ray_cluster import RayCluster, kill_the_first_run, started_pids
from tests.support.remote_episodes import put_folder
from tests.support.report import record
from tests.support.seaweedfs import SeaweedFS

CODEC = "libx264"


def options(out: Path, **kwargs: object) -> LeRobotExportOptions:
    return LeRobotExportOptions(out=out, fps=10, partner="oem-test", progress=False, vcodec=CODEC, **kwargs)


def dataset_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and module.WORK_DIR not in p.parts}


def without_operators(parquet: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(parquet)).drop_columns(["excap/operator"])


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

    victim, killed_at = kill_the_first_run(run, pause, join_timeout=240)
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


def test_from_an_object_store_prefix_to_an_object_store_on_ray(ray_cluster: RayCluster, recorded_dir: Path,
                                                               tmp_path: Path, serial_files: dict[str, bytes],
                                                               seaweedfs: SeaweedFS, s3_bucket: str,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    s3 = seaweedfs.client()
    put_folder(s3, s3_bucket, "fleet", recorded_dir)
    source, catalog = f"s3://{s3_bucket}/fleet", str(tmp_path / "fleet.sqlite")
    assert main(["index", source, "--catalog", catalog]) == 0
    target = f"s3://{s3_bucket}/datasets/oem-test"
    assert main(["export", source, "--catalog", catalog, "--cache", str(tmp_path / "cache"), "--operators",
                 str(recorded_dir / ".excap" / "operators.yaml"), "--format", "lerobot", "--out", target,
                 "--partner", "oem-test", "--vcodec", CODEC, "--ray", ray_cluster.address, "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1].startswith(f"{target}: 2 episodes")
    assert f"{target}: {len(serial_files)} files uploaded" in captured.err
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="datasets/oem-test/")["Contents"]
    stored = {}
    for item in listed:
        body = s3.get_object(Bucket=s3_bucket, Key=item["Key"])
        stored[item["Key"].removeprefix("datasets/oem-test/")] = data = body["Body"].read()
        assert body["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    # Operator pseudonyms are keyed by a secret of the folder exported from (here the cache): that column differs
    episodes = "meta/episodes/chunk-000/file-000.parquet"
    assert {k: v for k, v in stored.items() if k != episodes} == {k: v for k, v in serial_files.items()
                                                                  if k != episodes}
    assert without_operators(stored[episodes]) == without_operators(serial_files[episodes])


def test_robomimic_on_ray_has_the_serial_export_content(ray_cluster: RayCluster, recorded_dir: Path,
                                                        tmp_path: Path) -> None:
    def robomimic(out: Path, **kwargs: object) -> RobomimicExportOptions:
        return RobomimicExportOptions(out=out, fps=10, partner="oem-test", progress=False, **kwargs)

    serial = export_robomimic(recorded_dir, robomimic(tmp_path / "serial.hdf5"))
    with RayExecutor(address=ray_cluster.address) as executor:
        parted = export_robomimic(recorded_dir, robomimic(tmp_path / "ray.hdf5", map_parts=parts_map(executor, 2)))
    assert (parted.episodes, parted.frames) == (serial.episodes, serial.frames)
    assert hdf5_contents(tmp_path / "ray.hdf5") == hdf5_contents(tmp_path / "serial.hdf5")


def test_workers_need_no_shared_filesystem(ray_cluster: RayCluster, recorded_dir: Path, tmp_path: Path,
                                          serial_files: dict[str, bytes]) -> None:
    def export(driver: Path) -> tuple[ExportResult, dict[str, bytes]]:
        with RayExecutor(address=ray_cluster.address) as executor:
            result = export_lerobot(recorded_dir, options(driver / "ray", map_parts=parts_map(executor, retries=0)))
        return result, dataset_files(driver / "ray")

    result, files = with_driver_only_folder(tmp_path / "driver", export)
    assert result.episodes == 2
    assert files == serial_files
    assert not [p for p in (tmp_path / "driver").rglob("*") if p.is_file()]  # the workers' view: nothing written


def test_robomimic_workers_need_no_shared_filesystem(ray_cluster: RayCluster, recorded_dir: Path,
                                                     tmp_path: Path) -> None:
    def robomimic(out: Path, **kwargs: object) -> RobomimicExportOptions:
        return RobomimicExportOptions(out=out, fps=10, partner="oem-test", progress=False, **kwargs)

    def export(driver: Path) -> tuple[ExportResult, object]:
        with RayExecutor(address=ray_cluster.address) as executor:
            parted = export_robomimic(recorded_dir, robomimic(driver / "ray.hdf5", map_parts=parts_map(executor, 0)))
        return parted, hdf5_contents(driver / "ray.hdf5")

    serial = export_robomimic(recorded_dir, robomimic(tmp_path / "serial.hdf5"))
    parted, contents = with_driver_only_folder(tmp_path / "driver", export)
    assert (parted.episodes, parted.frames) == (serial.episodes, serial.frames)
    assert contents == hdf5_contents(tmp_path / "serial.hdf5")
    assert not [p for p in (tmp_path / "driver").rglob("*") if p.is_file()]
