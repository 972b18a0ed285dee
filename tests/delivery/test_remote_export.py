"""`excap export s3://BUCKET/PREFIX --catalog ...`: the catalogue's selection of a prefix's episodes is copied to a
local cache (verified by SHA-256, reused when there) and exported like a folder's."""

from __future__ import annotations

import subprocess
from pathlib import Path

import h5py

from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.remote_episodes import put_episode, put_folder
from tests.support.seaweedfs import SeaweedFS
from tests.support.uplink import upload_env


def _excap(seaweedfs: SeaweedFS, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**upload_env(), "AWS_ENDPOINT_URL": seaweedfs.endpoint})


def _demos(out: Path) -> list[tuple[str, int]]:
    with h5py.File(out, "r") as handle:
        return [(str(handle["data"][demo].attrs["excap_episode_id"]), int(handle["data"][demo].attrs["num_samples"]))
                for demo in handle["data"]]


def test_export_from_remote_rows_matches_the_local_export(seaweedfs: SeaweedFS, s3_bucket: str, episode_dir: Path,
                                                          tmp_path: Path) -> None:
    put_folder(seaweedfs.client(), s3_bucket, "fleet", episode_dir)
    target, catalog, cache = f"s3://{s3_bucket}/fleet", str(tmp_path / "fleet.sqlite"), tmp_path / "cache"
    assert _excap(seaweedfs, "index", target, "--catalog", catalog).returncode == 0
    options = ("--format", "robomimic", "--fps", "5", "--no-progress", "--task", "dig-and-load")
    registry = str(episode_dir / ".excap" / "operators.yaml")

    local = _excap(seaweedfs, "export", str(episode_dir), "--out", str(tmp_path / "local.hdf5"), *options)
    assert local.returncode == 0, local.stderr
    remote = _excap(seaweedfs, "export", target, "--catalog", catalog, "--cache", str(cache), "--operators", registry,
                    "--out", str(tmp_path / "remote.hdf5"), *options)
    assert remote.returncode == 0, remote.stderr
    assert f"{cache}: 2 episodes fetched" in remote.stderr
    assert _demos(tmp_path / "remote.hdf5") == _demos(tmp_path / "local.hdf5") != []
    assert remote.stdout.split(":", 1)[1] == local.stdout.split(":", 1)[1]  # episodes, frames, left out
    for copy in cache.glob("*.h5"):  # the prefix mirrored: the selected episodes, as uploaded
        assert copy.read_bytes() == (episode_dir / copy.name).read_bytes()

    cached = sorted(cache.glob("*.h5"))
    again = _excap(seaweedfs, "export", target, "--catalog", catalog, "--cache", str(cache), "--operators", registry,
                   "--out", str(tmp_path / "again.hdf5"), *options)
    assert again.returncode == 0 and f"{cache}: 0 episodes fetched (0.0 MB), 2 reused" in again.stderr
    cached[0].write_bytes(cached[0].read_bytes()[:-10] + b"0123456789")  # a damaged copy is fetched again
    repaired = _excap(seaweedfs, "export", target, "--catalog", catalog, "--cache", str(cache), "--operators",
                      registry, "--out", str(tmp_path / "repaired.hdf5"), *options)
    assert repaired.returncode == 0 and f"{cache}: 1 episodes fetched" in repaired.stderr
    assert cached[0].read_bytes() == (episode_dir / cached[0].name).read_bytes()
    assert _demos(tmp_path / "repaired.hdf5") == _demos(tmp_path / "local.hdf5")

    # The object changed after it was indexed: its copy does not match the catalogued SHA-256.
    put_episode(seaweedfs.client(), s3_bucket, f"fleet/{cached[0].name}", cached[1])
    cached[0].unlink()
    stale = _excap(seaweedfs, "export", target, "--catalog", catalog, "--cache", str(cache), "--operators", registry,
                   "--out", str(tmp_path / "stale.hdf5"), *options)
    assert stale.returncode == 2 and stale.stdout == ""
    (line,) = stale.stderr.splitlines()
    assert line.startswith(f"excap: error: {target}/{cached[0].name}: the copy's SHA-256 ")
    assert not cached[0].exists() and not list(cache.glob(".*.fetch-*"))  # nothing half-written left
