"""Catalogue rows of the episodes in an object store, read from their metadata only.

An object-store prefix (`s3://bucket/prefix`) is catalogued like a folder, as its own *source*: one row per
episode, keyed by the episode's path under the prefix, `location` the object's `s3://bucket/key`. The object is
never read in full: `record_from_h5` takes an HDF5 file opened over ranged reads and reads the root attributes,
the stream groups' link names and the length of each stream's `t_ns` (no other dataset header and no sample
data), and the `kind` column of `/events` (with the detail of `label` events only, for the effective outcome).
Validity is what that metadata shows: the root attributes against the episode schema; sample data is not checked
(`excap validate` on a copy does that). The SHA-256 is the object's `sha256` metadata; an object without one is
catalogued with an empty digest and a problem (it cannot be verified, so it is not valid for exports).

`update_remote` is the incremental update: objects whose size, modification time and ETag are unchanged are
not read again, rows of objects gone from the prefix are removed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from excap.catalogue.rows import EpisodeRecord, IndexReport, started_ns
from excap.catalogue.store import CatalogueStore
from excap.core.errors import EpisodeError
from excap.core.s3_location import S3Location

METADATA_KEYS = ("episode_id", "machine_kind", "machine_model", "machine_id", "site", "task", "operator_id",
                 "outcome", "started_at")
NO_DIGEST = "no sha256 metadata on the object: its content cannot be verified"


@dataclass(frozen=True)
class RemoteObject:
    path: str  # under the prefix
    location: str  # s3://bucket/key
    size: int
    etag: str
    mtime_ns: int


@dataclass
class RemoteRead:
    """What reading one object's metadata gave: its record, or the problem that made it unreadable, and the
    bytes and requests it took."""

    record: EpisodeRecord | None
    problem: str = ""
    bytes_read: int = 0
    requests: int = 0
    transient: bool = False  # the store failed, not the object: skipped this time, not kept aside as unreadable


@dataclass
class RemoteIndexReport(IndexReport):
    reads: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (bytes read, requests)
    sizes: dict[str, int] = field(default_factory=dict)  # path -> object size, of the objects read

    def as_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed, "unchanged": self.unchanged,
                "skipped": [{"path": path, "problem": problem} for path, problem in self.unreadable],
                "read": [{"path": path, "size": self.sizes[path], "bytes_read": read, "requests": requests}
                         for path, (read, requests) in sorted(self.reads.items())],
                "bytes_read": sum(read for read, _ in self.reads.values()),
                "requests": sum(requests for _, requests in self.reads.values())}


def is_object_store(target: object) -> bool:
    """Whether a command's DIR argument names an object-store prefix (argparse's Path turns s3:// into s3:/)."""
    return str(target).startswith("s3:/")


def prefix_source(target: object) -> str:
    """The catalogue source of a prefix: `s3://bucket/prefix` in one spelling (no trailing '/'). ConfigError for
    anything but s3://BUCKET[/PREFIX]."""
    text = str(target)
    if text.startswith("s3:/") and not text.startswith("s3://"):
        text = "s3://" + text[len("s3:/"):]
    location = S3Location.parse(text)
    return f"s3://{location.bucket}/{location.prefix}" if location.prefix else f"s3://{location.bucket}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _matching_groups(group: Any, segments: list[str], prefix: str = "") -> list[tuple[str, Any]]:
    """(path, group) of the groups under `group` matching a schema stream pattern's segments ('*': any one name),
    found by link names: only the matching groups' headers are read."""
    import h5py

    if not segments:
        return [(prefix.rstrip("/"), group)]
    first, rest = segments[0], segments[1:]
    names = list(group) if first == "*" else ([first] if first in group else [])
    found: list[tuple[str, Any]] = []
    for name in names:
        child = group.get(name)
        if isinstance(child, h5py.Group):
            found.extend(_matching_groups(child, rest, f"{prefix}{name}/"))
    return found


def _streams(handle: Any, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Every stream of the schema's patterns present in the file, with its sample count (its `t_ns` length: the
    dataset's header only)."""
    found: dict[str, int] = {}
    for pattern in schema["streams"]:
        for path, group in _matching_groups(handle, pattern.split("/")):
            if "t_ns" in group:
                found[path] = int(group["t_ns"].shape[0])
    return [{"path": path, "samples": found[path]} for path in sorted(found)]


def _stored_lengths(handle: Any, dataset: Any, rows: list[int]) -> list[int] | None:
    """The byte lengths of variable-length strings at `rows` of a chunked, unfiltered dataset, from the heap ids in
    its raw chunks (length, heap collection address, index: a few kB) instead of the strings (their collections);
    None when the layout is another (then the strings are read)."""
    import numpy as np

    try:
        if dataset.chunks is None or dataset.id.get_create_plist().get_nfilters() != 0 or dataset.ndim != 1:
            return None
        address_size = handle.id.get_create_plist().get_sizes()[0]
        entry = np.dtype([("length", "<u4"), ("collection", f"<u{address_size}"), ("index", "<u4")])
        per_chunk = int(dataset.chunks[0])
        chunks: dict[int, Any] = {}
        lengths = []
        for row in rows:
            start = row - row % per_chunk
            if start not in chunks:
                _, raw = dataset.id.read_direct_chunk((start,))
                chunks[start] = np.frombuffer(raw, dtype=entry, count=len(raw) // entry.itemsize)
            lengths.append(int(chunks[start]["length"][row - start]))
        return lengths
    except Exception:  # any other layout or a damaged chunk: read the strings instead
        return None


def _label_events(handle: Any) -> list[Any]:
    """The `label` events of /events. `excap label` appends them with the latest t_ns of the episode, so only the
    kinds of the events at the maximum t_ns are read (kinds and details are variable-length strings: each costs
    a read of the heap collection it lives in, which for events recorded among camera frames is large)."""
    import numpy as np

    from excap.episode.labels import LABEL_EVENT
    from excap.episode.reader import Event, parse_detail

    events = handle.get("events")
    if events is None or not all(name in events for name in ("t_ns", "kind", "detail")):
        return []
    times = np.asarray(events["t_ns"][()], dtype=np.int64)
    if not len(times):
        return []
    # Each label's t_ns is the latest t_ns before it (see excap.episode.labels): every label is at the maximum.
    after = np.flatnonzero(times == times.max())
    lengths = _stored_lengths(handle, events["kind"], after.tolist())
    if lengths is not None:  # a kind of another length is no label: its string need not be read
        after = np.array([row for row, length in zip(after.tolist(), lengths, strict=True)
                          if length == len(LABEL_EVENT.encode())], dtype=np.int64)
        if not len(after):
            return []
    kinds = [_text(k) for k in events["kind"][after.tolist()]]
    rows = [int(row) for row, kind in zip(after.tolist(), kinds, strict=True) if kind == LABEL_EVENT]
    if not rows:
        return []
    details = events["detail"][rows]
    return [Event(int(times[row]), LABEL_EVENT, parse_detail(_text(d))) for row, d in zip(rows, details, strict=True)]


def record_from_h5(handle: Any, obj: RemoteObject, sha256: str) -> EpisodeRecord:
    """The record of one object from its open HDF5 file (see the module docstring). EpisodeError (one line) if it
    is not a readable excap episode."""
    from excap.episode.labels import effective_outcome
    from excap.episode.reader import stream_kind
    from excap.episode.schema import load_episode_schema, supported_versions
    from excap.episode.structure import SCHEMA_NAME, EpisodeStructure, read_attributes, shown
    from excap.episode.structure import _root as check_root_attributes

    out = EpisodeStructure()
    values = read_attributes(handle, "root", out.problems)
    schema_name = values.get("schema")
    if _text(schema_name) != SCHEMA_NAME:
        raise EpisodeError(f"not an excap episode (foreign HDF5 file: root attribute schema is {shown(schema_name)})")
    version: Any = values.get("schema_version")
    try:
        schema = load_episode_schema(int(version)) if int(version) in supported_versions() else None
    except (TypeError, ValueError):
        schema = None
    if schema is None:
        raise EpisodeError(f"unsupported schema_version {shown(version)} (supported: {supported_versions()})")
    check_root_attributes(values, schema, out)
    record = EpisodeRecord(path=obj.path, location=obj.location, size=obj.size, mtime_ns=obj.mtime_ns, etag=obj.etag,
                           sha256=sha256)
    for key in METADATA_KEYS:
        setattr(record, key, _text(values.get(key, "")))
    record.recovered = bool(values.get("recovered", False))
    try:
        duration = float(values.get("duration_s", 0.0) or 0.0)
    except (TypeError, ValueError):
        duration = math.nan
    record.streams = [{"path": s["path"], "kind": stream_kind(s["path"]), "samples": s["samples"]}
                      for s in _streams(handle, schema)]
    record.outcome = effective_outcome(_label_events(handle), record.outcome)
    record.problems = [f"{obj.location}: {p}" for p in dict.fromkeys(out.problems + out.deviations)]
    if not sha256:
        record.problems.append(f"{obj.location}: {NO_DIGEST}")
    if not math.isfinite(duration):
        record.problems.append(f"{obj.location}: duration_s is {duration}")
    record.duration_s = duration if math.isfinite(duration) else 0.0
    record.valid = not record.problems
    record.started_ns = started_ns(record.started_at)
    return record


def update_remote(store: CatalogueStore, objects: Iterable[RemoteObject],
                  read_all: Callable[[list[RemoteObject]], Iterable[RemoteRead]],
                  rebuild: bool = False) -> RemoteIndexReport:
    """Bring the rows of `store.source` up to date with `objects` (the episodes listed under the prefix), reading
    only the new and changed ones: `read_all(objects)` gives their reads in the same order (it may read several at
    once); each row is written as its read arrives."""
    report = RemoteIndexReport()
    with store.transaction():
        if rebuild:
            store.clear()
        known, etags, bad = store.known(), store.etags(), store.unreadable()
        seen: set[str] = set()
        pending: list[RemoteObject] = []
        for obj in objects:
            seen.add(obj.path)
            identity = (obj.size, obj.mtime_ns)
            if known.get(obj.path) == identity and etags.get(obj.path) == obj.etag:
                report.unchanged += 1
            elif obj.path in bad and bad[obj.path][:2] == identity:
                report.unreadable.append((obj.path, bad[obj.path][2]))
            else:
                pending.append(obj)
        for obj, result in zip(pending, read_all(pending), strict=True):
            report.reads[obj.path] = (result.bytes_read, result.requests)
            report.sizes[obj.path] = obj.size
            if result.record is None:
                if not result.transient:
                    store.put_unreadable(obj.path, obj.size, obj.mtime_ns, result.problem)
                report.unreadable.append((obj.path, result.problem))
                continue
            store.put_episode(result.record)
            (report.updated if obj.path in known else report.added).append(obj.path)
        for path in sorted(set(known) - seen):
            store.forget(path)
            report.removed.append(path)
        for path in set(bad) - seen - set(known):
            store.forget(path)
    report.unreadable.sort()
    return report
