"""Local copies of catalogued object-store episodes, for exports:
`excap export s3://BUCKET/PREFIX --catalog ... --cache DIR` (without --cache each export task fetches its own
episode instead, excap.cluster.remote_export).

The episodes of the prefix that the catalogue selects (valid ones, matching the export's filters) are copied into
a cache folder that mirrors the prefix (`--cache`, default `$XDG_CACHE_HOME/excap/objects/BUCKET/PREFIX`), each
verified against its catalogued SHA-256; a copy already there with that digest is reused. Cached files of
episodes no longer in the catalogue (or of another size) are removed, so the cache folder holds no episode the
catalogue does not. The export then reads the cache folder like any episode folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from excap.catalogue.backends import open_prefix_store
from excap.catalogue.index import episode_files
from excap.catalogue.remote import prefix_source
from excap.catalogue.rows import EpisodeFilter
from excap.core.s3_location import S3Location
from excap.delivery.s3sync import SyncOptions, _s3_errors, client, safe_relative
from excap.objectstore.fetch import fetch_verified


@dataclass
class FetchReport:
    folder: Path
    fetched: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes: int = 0


def default_cache(source: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    location = S3Location.parse(source)
    return base / "excap" / "objects" / location.bucket / location.prefix


def fetch_selection(target: str, selection: EpisodeFilter | None, catalog: str | None = None,
                    cache: Path | None = None, options: SyncOptions | None = None) -> FetchReport:
    """Copy the selected valid episodes of the prefix into the cache folder (see the module docstring)."""
    source = prefix_source(target)
    store = open_prefix_store(source, catalog)
    try:
        every = {r.path: r for r in store.records(EpisodeFilter())}
        wanted = store.records(EpisodeFilter(**{**vars(selection or EpisodeFilter()), "valid": True}))
    finally:
        store.close()
    report = FetchReport(cache or default_cache(source))
    report.folder.mkdir(parents=True, exist_ok=True)
    for path in episode_files(report.folder):
        relative = path.relative_to(report.folder).as_posix()
        row = every.get(relative)
        if row is None or row.size != path.stat().st_size:
            path.unlink()
            report.removed.append(relative)
    location = S3Location.parse(source)
    with _s3_errors(source):
        s3 = client(options or SyncOptions())
        for record in wanted:
            if not safe_relative(record.path):
                continue
            key = location.key(record.path)
            if fetch_verified(s3, location.bucket, key, record.sha256, report.folder / record.path):
                report.fetched.append(record.path)
                report.bytes += record.size
            else:
                report.reused.append(record.path)
    return report
