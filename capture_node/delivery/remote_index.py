"""`excap index s3://BUCKET/PREFIX`: the episodes of an object-store prefix written into a catalogue, each read
with a few ranged reads of its metadata (see `excap.catalogue.remote` for what is read).

Each new or changed `.h5` object costs one HEAD (its size, ETag and `sha256` metadata) and the Range GETs of
`RangedObject`; objects whose size, modification time and ETag are unchanged cost nothing beyond the listing.
The bytes and requests each read took are in the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from excap.catalogue.backends import open_prefix_store
from excap.catalogue.remote import (
    RemoteIndexReport,
    RemoteObject,
    RemoteRead,
    prefix_source,
    record_from_h5,
    update_remote,
)
from excap.core.errors import EpisodeError
from excap.core.s3_location import S3Location
from excap.delivery.s3sync import EPISODE_SUFFIX, SHA_KEY, SyncOptions, _require_bucket, _s3_errors, client
from excap.episode.structure import one_line
from excap.objectstore.ranged import RangedObject


def listed_objects(s3: Any, location: S3Location) -> Iterator[RemoteObject]:
    """The episode objects under the prefix, in key order (hidden and temporary names left out)."""
    listing = s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket,
                                                            Prefix=location.key("") if location.prefix else "")
    for page in listing:
        for item in page.get("Contents", []):
            key = item["Key"]
            relative = location.relative(key)
            if not relative or not key.endswith(EPISODE_SUFFIX) or int(item["Size"]) <= 0:
                continue
            if any(part.startswith(".") for part in relative.split("/")):
                continue
            modified = item["LastModified"]
            yield RemoteObject(relative, f"s3://{location.bucket}/{key}", int(item["Size"]),
                               str(item.get("ETag", "")).strip('"'), int(modified.timestamp()) * 1_000_000_000)


def read_remote(s3: Any, bucket: str, obj: RemoteObject) -> RemoteRead:
    """One object's record from a HEAD and ranged reads of its metadata; an unreadable object is its problem."""
    import h5py

    key = obj.location[len(f"s3://{bucket}/"):]
    head = s3.head_object(Bucket=bucket, Key=key)
    sha256 = str(head.get("Metadata", {}).get(SHA_KEY, "")).strip().lower()
    source = RangedObject(s3, bucket, key, int(head["ContentLength"]))
    result = RemoteRead(None)
    try:
        with h5py.File(source, "r") as handle:
            result.record = record_from_h5(handle, obj, sha256)
    except EpisodeError as exc:
        result.problem = one_line(exc)
    except Exception as exc:  # not HDF5, damaged, or the object changed while read
        result.problem = f"cannot read its metadata ({one_line(exc)})"
    result.bytes_read, result.requests = source.bytes_fetched, source.requests + 1  # and the HEAD
    return result


def index_prefix(target: str, catalog: str | Path | None = None, rebuild: bool = False,
                 options: SyncOptions | None = None) -> RemoteIndexReport:
    """Catalogue the episodes under s3://bucket/prefix in `catalog` (or $EXCAP_CATALOG)."""
    source = prefix_source(target)
    location = S3Location.parse(source)
    store = open_prefix_store(source, catalog)
    try:
        with _s3_errors(source):
            s3 = client(options or SyncOptions())
            _require_bucket(s3, location.bucket)
            objects = list(listed_objects(s3, location))
            return update_remote(store, objects, lambda obj: read_remote(s3, location.bucket, obj), rebuild)
    finally:
        store.close()
