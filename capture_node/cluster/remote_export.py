"""`excap export s3://BUCKET/PREFIX` with no copy on the machine running the command (the driver): the episodes
are chosen and planned from metadata, and each episode task downloads its own object on its worker.

- Selection: the catalogue's rows of the prefix (`--catalog`: `excap index s3://...` wrote them, every filter
  field is there) or, without a catalogue, rows read right now from each object's metadata with ranged reads
  (excap.delivery.remote_index, into a temporary catalogue). Consent and pseudonyms as for a folder
  (excap.datasets.selection), the operator registry given by file and the pseudonym secret kept beside it.
- Layout (cameras and their frame sizes, state signals, commands): each selected episode opened over ranged
  reads (excap.objectstore.ranged): its metadata and the first and last frame of each camera, a small part of
  the object. An object that cannot be read so is one bad episode, skipped (or failing a strict export).
- Tasks: each carries an `EpisodeSource` (address, size, the SHA-256 it was selected with) and opens it with
  `local_episode` on the worker: downloaded to a temporary file, checked against that SHA-256, exported,
  removed. A missing or changed object is one skipped episode.

`DriverReads` counts what the driver read from the store (bytes and requests of the metadata reads).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from excap.catalogue.backends import open_prefix_store
from excap.catalogue.remote import prefix_source
from excap.catalogue.rows import EpisodeFilter, EpisodeRecord
from excap.catalogue.store import chosen_catalog
from excap.cluster.sources import EpisodeSource, local_episode, with_endpoint
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.core.s3_location import S3Location
from excap.core.state_dir import private_file
from excap.datasets.export.fetched import Fetch, FetchedEpisodes
from excap.datasets.frames import Layout, layout_from_metadata
from excap.datasets.selection import SelectedEpisode, shared_records
from excap.delivery.remote_index import index_prefix
from excap.delivery.s3sync import SHA_KEY, SyncOptions, _s3_errors, client
from excap.episode.structure import one_line
from excap.objectstore.ranged import RangedObject
from excap.people.registry import KEY_NAME, load_registry


@dataclass
class DriverReads:
    """What the driver read from the object store: bytes and requests, per purpose."""

    selection_bytes: int = 0  # ranged metadata reads of the selection (0 when the catalogue had the rows)
    layout_bytes: int = 0  # ranged reads of the layout (metadata and two frames per camera)
    requests: int = 0
    episodes: int = 0  # selected episodes
    episode_bytes: int = 0  # their total size
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, problem) of objects not catalogued

    @property
    def bytes(self) -> int:
        return self.selection_bytes + self.layout_bytes

    def line(self, source: str) -> str:
        share = f" ({self.bytes / self.episode_bytes:.1%} of their {self.episode_bytes / 1e6:.1f} MB)" \
            if self.episode_bytes else ""
        return (f"{source}: {self.episodes} episodes planned from {self.bytes / 1e3:.1f} kB of metadata "
                f"reads{share} in {self.requests} requests; each task fetches its own episode")


class RangedLayouts:
    """`layout_of(path)` of the selected episodes under a prefix: a HEAD (the object must still have the size and
    SHA-256 it was selected with), then the layout over ranged reads; the bytes and requests counted."""

    def __init__(self, s3: Any, location: S3Location, records: dict[str, EpisodeRecord], reads: DriverReads) -> None:
        self.s3, self.location, self.records, self.reads = s3, location, records, reads

    def __call__(self, path: Path) -> Layout:
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        relative = PurePosixPath(path).as_posix()
        record, key = self.records[relative], self.location.key(relative)
        self.reads.requests += 1
        try:
            head = self.s3.head_object(Bucket=self.location.bucket, Key=key)
        except (Boto3Error, BotoCoreError, ClientError) as exc:
            raise EpisodeError(f"{path}: the object cannot be read ({one_line(exc)})") from exc
        size, digest = int(head["ContentLength"]), str(head.get("Metadata", {}).get(SHA_KEY, "")).strip().lower()
        if size != record.size or (digest and record.sha256 and digest != record.sha256):
            raise EpisodeError(f"{path}: the object changed since it was catalogued (size {size}, sha256 "
                               f"{digest[:16] or 'none'}...; selected with size {record.size}, sha256 "
                               f"{record.sha256[:16]}...)")
        source = RangedObject(self.s3, self.location.bucket, key, size)
        try:
            return layout_from_metadata(path, source)  # type: ignore[arg-type]  # a binary file object
        finally:
            self.reads.layout_bytes += source.bytes_fetched
            self.reads.requests += source.requests


def _fetcher(location: S3Location, options: SyncOptions, episode: SelectedEpisode) -> Fetch:
    record = episode.record
    source = EpisodeSource(f"s3://{location.bucket}/{location.key(record.path)}", record.path, record.size,
                           record.sha256)
    return partial(local_episode, source, options)


def _records(source: str, selection: EpisodeFilter, catalog: str | None, options: SyncOptions,
             reads: DriverReads) -> list[EpisodeRecord]:
    """The rows of the prefix matching the filters: the catalogue's, else read now from the objects' metadata."""
    if chosen_catalog(catalog) is None:
        with tempfile.TemporaryDirectory(prefix="excap-select-") as folder:
            catalogue = str(Path(folder) / "catalogue.sqlite")
            report = index_prefix(source, catalogue, options=options)
            reads.selection_bytes = sum(read for read, _ in report.reads.values())
            reads.requests += sum(requests for _, requests in report.reads.values())
            reads.unreadable = list(report.unreadable)
            return _stored(source, selection, catalogue)
    return _stored(source, selection, catalog)


def _stored(source: str, selection: EpisodeFilter, catalog: str | None) -> list[EpisodeRecord]:
    store = open_prefix_store(source, catalog)
    try:
        return store.records(selection)
    finally:
        store.close()


def remote_episodes(target: str, selection: EpisodeFilter | None, partner: str, registry_file: Path | None,
                    catalog: str | None = None, options: SyncOptions | None = None
                    ) -> tuple[FetchedEpisodes, DriverReads]:
    """The export's episodes under the prefix `target` (see the module docstring) and what choosing them read."""
    source = prefix_source(target)
    if registry_file is None:
        raise ConfigError(f"{source}: an object-store prefix has no .excap folder: name the operator registry with "
                          "--operators FILE")
    registry = load_registry(private_file(registry_file))
    options = with_endpoint(options)
    location = S3Location.parse(source)
    reads = DriverReads()
    with _s3_errors(source):
        records = _records(source, (selection or EpisodeFilter()).check(), catalog, options, reads)
        chosen = shared_records(records, partner, registry, Path(registry_file).parent / KEY_NAME,
                                lambda record: Path(record.path))
        if not chosen.episodes:
            raise ExcapError(f"no episodes to export (left out: {chosen.excluded or 'none matched the filters'})")
        reads.episodes = len(chosen.episodes)
        reads.episode_bytes = sum(e.record.size for e in chosen.episodes)
        layouts = RangedLayouts(client(options), location, {e.record.path: e.record for e in chosen.episodes}, reads)
    return FetchedEpisodes(chosen, layouts, partial(_fetcher, location, options)), reads


__all__ = ["DriverReads", "RangedLayouts", "remote_episodes"]
