"""`excap index s3://BUCKET/PREFIX`: the episodes of an object-store prefix written into a catalogue, each read
with a few ranged reads of its metadata (see `excap.catalogue.remote` for what is read).

Each new or changed `.h5` object costs one HEAD (its size, ETag and `sha256` metadata) and the Range GETs of
`RangedObject`; objects whose size, modification time and ETag are unchanged cost nothing beyond the listing.
The bytes and requests each read took are in the report.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
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
    """One object's record from a HEAD and ranged reads of its metadata. An object that is not a readable episode
    is its problem; a request the store failed is a transient problem (read again by the next index)."""
    import h5py
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    key = obj.location[len(f"s3://{bucket}/"):]
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except (Boto3Error, BotoCoreError, ClientError) as exc:
        return RemoteRead(None, f"HEAD failed ({one_line(exc)})", 0, 1, transient=True)
    sha256 = str(head.get("Metadata", {}).get(SHA_KEY, "")).strip().lower()
    source = RangedObject(s3, bucket, key, int(head["ContentLength"]))
    result = RemoteRead(None)
    try:
        with h5py.File(source, "r") as handle:
            result.record = record_from_h5(handle, obj, sha256)
    except EpisodeError as exc:
        result.problem = one_line(exc)
    except Exception as exc:  # not HDF5, damaged, changed while read, or the store failed a request
        if source.error is not None:
            result.problem, result.transient = f"a ranged read failed ({one_line(source.error)})", True
        else:
            result.problem = f"cannot read its metadata ({one_line(exc)})"
    result.bytes_read, result.requests = source.bytes_fetched, source.requests + 1  # and the HEAD
    return result


# Objects read at once (worker processes: h5py runs one call at a time per process). A metadata read is a chain of
# small dependent requests, so its time is the store's latency; several in flight hide it.
DEFAULT_PARALLEL = 4
_worker: dict[str, Any] = {}


def _start_worker(options: SyncOptions, bucket: str) -> None:
    _worker["s3"], _worker["bucket"] = client(options), bucket


def _read_in_worker(obj: RemoteObject) -> RemoteRead:
    return read_remote(_worker["s3"], _worker["bucket"], obj)


def _reader(s3: Any, bucket: str, options: SyncOptions, parallel: int, stack: ExitStack) \
        -> Callable[[list[RemoteObject]], Iterable[RemoteRead]]:
    if parallel <= 1:
        return lambda objects: (read_remote(s3, bucket, obj) for obj in objects)

    def read_all(objects: list[RemoteObject]) -> Iterable[RemoteRead]:
        if len(objects) <= 1:
            return [read_remote(s3, bucket, obj) for obj in objects]
        pool = stack.enter_context(ProcessPoolExecutor(
            min(parallel, len(objects)), mp_context=multiprocessing.get_context("fork"), initializer=_start_worker,
            initargs=(options, bucket)))
        return pool.map(_read_in_worker, objects)
    return read_all


def index_prefix(target: str, catalog: str | Path | None = None, rebuild: bool = False,
                 options: SyncOptions | None = None, parallel: int = DEFAULT_PARALLEL) -> RemoteIndexReport:
    """Catalogue the episodes under s3://bucket/prefix in `catalog` (or $EXCAP_CATALOG), `parallel` objects read
    at once."""
    source = prefix_source(target)
    location = S3Location.parse(source)
    options = options or SyncOptions()
    store = open_prefix_store(source, catalog)
    try:
        with _s3_errors(source), ExitStack() as stack:
            s3 = client(options)
            _require_bucket(s3, location.bucket)
            objects = list(listed_objects(s3, location))
            return update_remote(store, objects, _reader(s3, location.bucket, options, parallel, stack), rebuild)
    finally:
        store.close()
