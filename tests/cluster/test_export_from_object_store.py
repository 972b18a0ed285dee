"""`excap export s3://...` without --cache: the driver plans from metadata (catalogue rows or ranged reads) and each
episode task downloads its own object on its worker (a real local Ray cluster, tests/support/ray_cluster.py, and
SeaweedFS). The dataset equals a serial export of the same episodes from a local folder byte for byte; the driver
reads a small part of the episodes and keeps no copy; a changed or missing object is one skipped episode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from excap.cli.datasets import main
from excap.datasets.export import lerobot as module
from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
from excap.datasets.frames import episode_layout, layout_from_metadata
from excap.episode.reader import EpisodeReader
from tests.support.hdf5_contents import hdf5_contents
from tests.support.ray_cluster import RayCluster
from tests.support.remote_episodes import put_episode, put_folder
from tests.support.report import record
from tests.support.seaweedfs import SeaweedFS

CODEC = "libx264"
PLANNED = re.compile(r": (\d+) episodes planned from ([\d.]+) kB of metadata reads \(([\d.]+)% of their")


def dataset_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and module.WORK_DIR not in p.parts}


@pytest.fixture(scope="module")
def local_serial_files(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local-serial") / "dataset"
    result = export_lerobot(recorded_dir, LeRobotExportOptions(out=out, fps=10, partner="oem-test", progress=False,
                                                               vcodec=CODEC))
    assert result.episodes == 2
    return dataset_files(out)


@pytest.fixture
def fleet(seaweedfs: SeaweedFS, s3_bucket: str, recorded_dir: Path, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> str:
    """The recorded episodes under s3://BUCKET/fleet; no driver cache folder exists before the export."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    put_folder(seaweedfs.client(), s3_bucket, "fleet", recorded_dir)
    return f"s3://{s3_bucket}/fleet"


def export_args(source: str, out: Path, recorded_dir: Path, *more: str) -> list[str]:
    return ["export", source, "--format", "lerobot", "--out", str(out), "--partner", "oem-test", "--vcodec", CODEC,
            "--operators", str(recorded_dir / ".excap" / "operators.yaml"), "--no-progress", *more]


def test_ray_export_from_the_store_equals_a_local_serial_export(ray_cluster: RayCluster, recorded_dir: Path,
                                                                fleet: str, tmp_path: Path,
                                                                local_serial_files: dict[str, bytes],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ray"
    assert main(export_args(fleet, out, recorded_dir, "--ray", ray_cluster.address)) == 0  # no catalogue
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{out}: 2 episodes")
    assert dataset_files(out) == local_serial_files  # parquet, meta JSON and mp4, byte for byte
    (planned,) = [m for m in map(PLANNED.search, captured.err.splitlines()) if m]
    episodes, kilobytes, percent = int(planned[1]), float(planned[2]), float(planned[3])
    sizes = sorted(p.stat().st_size for p in recorded_dir.glob("*.h5"))
    # The driver's reads: metadata of the 3 objects and the layout of the 2 selected ones, far below one copy.
    assert episodes == 2 and 0 < kilobytes * 1e3 / episodes < sizes[0] / 3 and percent < 30
    assert not (tmp_path / "xdg-cache").exists()  # no driver-side cache folder was made
    record("cluster", "export s3:// on Ray: driver bytes read per selected episode",
           f"{kilobytes / episodes:.1f} kB ({percent:.1f}% of the episodes' size)")


def damaged_copy(path: Path) -> bytes:
    """The episode's bytes with one byte of a middle camera frame changed (same size; its metadata and the first
    and last frames, which planning reads, intact)."""
    data = path.read_bytes()
    with EpisodeReader(path) as reader:
        camera = reader.camera(reader.paths("camera")[0])
        frame = camera.jpeg(len(camera) // 2)
    offset = data.find(frame) + len(frame) // 2
    assert offset > len(frame) // 2 and data.count(frame) == 1
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def test_a_damaged_changed_or_missing_object_is_one_skipped_episode(ray_cluster: RayCluster, seaweedfs: SeaweedFS,
                                                                    s3_bucket: str, recorded_dir: Path, fleet: str,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    catalog = str(tmp_path / "fleet.sqlite")
    assert main(["index", fleet, "--catalog", catalog]) == 0
    names = sorted(p.name for p in recorded_dir.glob("*.h5"))
    s3 = seaweedfs.client()
    key = f"fleet/{names[0]}"
    digest = s3.head_object(Bucket=s3_bucket, Key=key)["Metadata"]["sha256"]
    # Damaged after indexing, size and sha256 metadata as catalogued: only the worker's download can tell.
    s3.put_object(Bucket=s3_bucket, Key=key, Body=damaged_copy(recorded_dir / names[0]), Metadata={"sha256": digest})
    capsys.readouterr()

    out = tmp_path / "damaged"
    assert main(export_args(fleet, out, recorded_dir, "--catalog", catalog, "--ray", ray_cluster.address)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{out}: 1 episodes") and f"skipped 1: {Path(names[0]).stem}" in captured.out
    (line,) = [line for line in captured.err.splitlines() if line.startswith("excap export: skipped")]
    assert line.endswith(f"({names[0]}): cannot be fetched: {fleet}/{names[0]}: downloaded content differs from "
                         "the SHA-256 it was selected with")
    assert len(list(out.glob("videos/*/chunk-000/*.mp4"))) == 1
    report = json.loads((out / "meta" / "excap_export.json").read_text())
    assert [s["file"] for s in report["skipped_episodes"]] == [names[0]]

    strict = tmp_path / "strict"
    assert main(export_args(fleet, strict, recorded_dir, "--catalog", catalog, "--strict")) == 2
    (line,) = capsys.readouterr().err.splitlines()[-1:]
    assert line.startswith(f"excap: error: {names[0]}: cannot be fetched: ") and "--strict" in line

    put_episode(s3, s3_bucket, key, recorded_dir / names[2])  # replaced by another episode since it was indexed
    changed = tmp_path / "changed"
    assert main(export_args(fleet, changed, recorded_dir, "--catalog", catalog)) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{changed}: 1 episodes")
    assert f"({names[0]}): the object changed since it was catalogued" in captured.err

    s3.delete_object(Bucket=s3_bucket, Key=key)  # gone since it was indexed
    gone = tmp_path / "gone"
    assert main(export_args(fleet, gone, recorded_dir, "--catalog", catalog, "--workers", "2")) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{gone}: 1 episodes")
    assert f"({names[0]}): the object cannot be read" in captured.err


def test_robomimic_from_the_store_equals_the_local_export(recorded_dir: Path, fleet: str, tmp_path: Path) -> None:
    local = export_robomimic(recorded_dir, RobomimicExportOptions(out=tmp_path / "local.hdf5", fps=10,
                                                                  partner="oem-test", progress=False))
    assert main(["export", fleet, "--format", "robomimic", "--out", str(tmp_path / "remote.hdf5"), "--partner",
                 "oem-test", "--operators", str(recorded_dir / ".excap" / "operators.yaml"), "--no-progress",
                 "--workers", "2"]) == 0
    assert local.episodes == 2
    assert hdf5_contents(tmp_path / "remote.hdf5") == hdf5_contents(tmp_path / "local.hdf5")


def test_the_layout_from_metadata_is_the_episode_layout(recorded_dir: Path) -> None:
    """What planning reads over ranged reads (here: a local file object) gives each episode's full layout."""
    for path in sorted(recorded_dir.glob("*.h5")):
        with path.open("rb") as source:
            assert layout_from_metadata(path, source) == episode_layout(path)


def test_a_prefix_without_operators_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "s3://fleet/episodes", "--format", "lerobot", "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == (
        "excap: error: s3://fleet/episodes: an object-store prefix has no .excap folder: name the operator registry "
        "with --operators FILE\n")
    assert not (tmp_path / "out").exists()
