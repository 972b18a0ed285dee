"""`excap index s3://BUCKET/PREFIX`: the metadata of the episodes in an object store, read with ranged reads.

Each `.h5` object under the prefix is opened by h5py over a `RangedObject` and only its root attributes (the
episode's metadata) are read: a few small Range GETs per episode instead of the whole file. The bytes fetched
per episode are reported beside its metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from excap.delivery.ranged import RangedObject
from excap.delivery.s3sync import EPISODE_SUFFIX, S3Location, SyncOptions, _require_bucket, _s3_errors, client
from excap.episode.structure import one_line


@dataclass
class RemoteEpisode:
    key: str
    size: int
    bytes_fetched: int
    requests: int
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str = ""


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def read_metadata(s3: Any, bucket: str, key: str, size: int) -> RemoteEpisode:
    import h5py

    source = RangedObject(s3, bucket, key, size)
    episode = RemoteEpisode(key, size, 0, 0)
    try:
        with h5py.File(source, "r") as handle:
            episode.metadata = {name: _plain(value) for name, value in handle.attrs.items()}
    except Exception as exc:  # not HDF5, damaged, or the object changed while read
        episode.problem = f"s3://{bucket}/{key}: cannot read its metadata ({one_line(exc)})"
    episode.bytes_fetched, episode.requests = source.bytes_fetched, source.requests
    return episode


def remote_index(target: str, options: SyncOptions | None = None) -> Iterator[RemoteEpisode]:
    """The episodes under s3://bucket/prefix, in key order, each with its metadata or the problem reading it."""
    location = S3Location.parse(target)
    with _s3_errors(target):
        s3 = client(options or SyncOptions())
        _require_bucket(s3, location.bucket)
        listing = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                                Prefix=location.key("") if location.prefix else "")
        for page in listing:
            for item in page.get("Contents", []):
                if item["Key"].endswith(EPISODE_SUFFIX) and int(item["Size"]) > 0:
                    yield read_metadata(s3, location.bucket, item["Key"], int(item["Size"]))
