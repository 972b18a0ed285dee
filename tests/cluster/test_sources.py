"""Episode sources and task outputs: a folder or an s3:// prefix (SeaweedFS), listed alike, written alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from excap.cluster.sources import OutputTarget, list_episodes, local_episode
from excap.core.errors import ConfigError
from excap.delivery.s3sync import SyncOptions
from tests.support.seaweedfs import SeaweedFS


def test_a_folder_and_a_prefix_list_the_same_episodes(tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    files = {"a.h5": b"one", "site/b.h5": b"two", "exports/x.h5": b"export", ".recording/j.h5": b"journal",
             "notes.txt": b"text"}
    for relative, data in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(data)
        seaweedfs.client().put_object(Bucket=s3_bucket, Key=f"fleet/{relative}", Body=data)
    options = SyncOptions(endpoint_url=seaweedfs.endpoint, progress=False)
    local = list_episodes(str(tmp_path))
    remote = list_episodes(f"s3://{s3_bucket}/fleet", options)
    assert [s.relative for s in local] == [s.relative for s in remote] == ["a.h5", "site/b.h5"]
    with local_episode(remote[1], options) as copy:
        assert copy.read_bytes() == b"two"
    assert not copy.exists()  # the worker's copy is removed afterwards
    with local_episode(local[0]) as same:
        assert same == tmp_path / "a.h5"


def test_outputs_go_to_a_folder_or_a_prefix(tmp_path: Path, seaweedfs: SeaweedFS, s3_bucket: str) -> None:
    part = tmp_path / "part.parquet"
    part.write_bytes(b"PAR1" * 100)
    folder = OutputTarget.of(str(tmp_path / "out"))
    assert folder.put("data/chunk-000/episode_000000.parquet", part) == str(
        tmp_path / "out/data/chunk-000/episode_000000.parquet")
    assert (tmp_path / "out/data/chunk-000/episode_000000.parquet").read_bytes() == part.read_bytes()
    remote = OutputTarget.of(f"s3://{s3_bucket}/datasets/v1", SyncOptions(endpoint_url=seaweedfs.endpoint))
    address = remote.put("data/episode_000000.parquet", part)
    assert address == f"s3://{s3_bucket}/datasets/v1/data/episode_000000.parquet"
    stored = seaweedfs.client().get_object(Bucket=s3_bucket, Key="datasets/v1/data/episode_000000.parquet")
    assert stored["Body"].read() == part.read_bytes() and len(stored["Metadata"]["sha256"]) == 64
    for bad in ("../escape", "/abs", "a//b"):
        with pytest.raises(ConfigError, match="not a relative path inside the output"):
            folder.put(bad, part)
