"""`excap index s3://...`: episode metadata read from SeaweedFS with ranged reads, a small part of each file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import h5py
import pytest

from excap.delivery.ranged import RangedObject
from excap.delivery.remote_index import remote_index
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.report import record
from tests.support.seaweedfs import SeaweedFS
from tests.support.uplink import padded_episode, run_upload, upload_env


def test_index_reads_only_the_metadata(seaweedfs: SeaweedFS, s3_bucket: str, sim_episode: Path, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "station"
    big = padded_episode(sim_episode, folder / "big.h5", 16, seed=4)
    run_upload(folder, f"s3://{s3_bucket}/fleet", seaweedfs, "--once", "--part-size-mb", "5")
    seaweedfs.client().put_object(Bucket=s3_bucket, Key="fleet/broken.h5", Body=b"x" * 5000)
    with h5py.File(big, "r") as handle:
        expected = {name: handle.attrs[name] for name in ("episode_id", "machine_id")}

    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    episodes = {e.key: e for e in remote_index(f"s3://{s3_bucket}/fleet")}
    assert sorted(episodes) == ["fleet/big.h5", "fleet/broken.h5"]
    found = episodes["fleet/big.h5"]
    assert not found.problem and {k: found.metadata[k] for k in expected} == expected
    record("remote index", "bytes read of a 19 MB episode", f"{found.bytes_fetched} in {found.requests} requests")
    assert found.bytes_fetched < found.size / 20  # metadata only, never the whole file
    assert "cannot read its metadata" in episodes["fleet/broken.h5"].problem

    done = subprocess.run(excap_command("index", f"s3://{s3_bucket}/fleet", "--json"), capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**upload_env(), "AWS_ENDPOINT_URL": seaweedfs.endpoint})
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [e["key"] for e in listed] == ["fleet/big.h5", "fleet/broken.h5"]
    assert listed[0]["metadata"]["episode_id"] == expected["episode_id"]
    (warning,) = done.stderr.strip().splitlines()
    assert warning.startswith(f"excap: warning: s3://{s3_bucket}/fleet/broken.h5: cannot read its metadata")


def test_ranged_object_reads_like_a_file(seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    data = bytes(range(256)) * 1000
    s3 = seaweedfs.client()
    s3.put_object(Bucket=s3_bucket, Key="blob", Body=data)
    source = RangedObject(s3, s3_bucket, "blob", len(data), block_size=4096, cache_blocks=2)
    assert source.read(10) == data[:10]
    source.seek(-5, 2)
    assert source.read(100) == data[-5:] and source.read(1) == b""
    source.seek(100_000)
    assert source.read(9000) == data[100_000:109_000]
    source.seek(0)
    assert source.read() == data
    assert source.requests >= len(data) // 4096
