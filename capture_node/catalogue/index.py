"""The episode catalogue: the episodes of one folder, in the folder's embedded SQLite file (DIR/.excap/catalogue.sqlite,
the default) or in a PostgreSQL catalogue shared by a fleet (`excap.catalogue.store`).

Its `outcome` is an episode's effective outcome: the latest `label` event's (`excap label`), else the recorded one.
It only holds what can be derived from the episode files (metadata, duration, streams, validation state,
SHA-256, size, mtime), so it can always be rebuilt from them. `update_catalogue` is incremental: files whose
size and mtime are unchanged are skipped, new and changed files are (re)read, rows of deleted files go.

A file that cannot be read as an episode at all (not HDF5, truncated, not an excap episode, or so malformed that
reading it fails) is no episode: it is kept aside in the `unreadable` table with the reason, reported by every
update (`IndexReport.unreadable`, one line each) and read again only when it changes. Files that can be read but
break the episode schema are catalogued as invalid.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from excap.catalogue.backends import open_store
from excap.catalogue.not_episodes import is_export_file, is_export_folder
from excap.catalogue.rows import (
    EARLIEST_DATE,
    LATEST_DATE,
    EpisodeFilter,
    EpisodeRecord,
    IndexReport,
    parse_time_bound,
    started_ns,
)
from excap.catalogue.sqlite_store import CATALOGUE_VERSION, SQLITE_NAME
from excap.catalogue.store import CatalogueStore
from excap.core.digests import file_sha256
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.core.state_dir import STATE_DIR

__all__ = ["CATALOGUE_NAME", "CATALOGUE_VERSION", "EARLIEST_DATE", "LATEST_DATE", "Catalogue", "EpisodeFilter",
           "EpisodeRecord", "IndexReport", "parse_time_bound", "records_table", "select_episodes", "started_ns",
           "update_catalogue"]

EXCAP_DIR = STATE_DIR
CATALOGUE_NAME = SQLITE_NAME
EPISODE_SUFFIXES = (".h5", ".hdf5")
METADATA_KEYS = ("episode_id", "machine_kind", "machine_model", "machine_id", "site", "task", "operator_id",
                 "outcome", "started_at")

# What reading a malformed file can raise, here or in h5py and numpy below the readers: such a file is skipped with
# its reason, and the folder tool goes on. Anything else is a defect and is not hidden.
UNREADABLE_ERRORS = (ExcapError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError)
MAX_PROBLEM_CHARS = 300
Warn = Callable[[str, str], None]  # (file, problem)


def one_line(exc: BaseException, path: Path | None = None) -> str:
    """An exception as one short line, without a leading copy of the file name."""
    text = " ".join(str(exc).split())
    if path is not None and text.startswith(f"{path}: "):
        text = text[len(str(path)) + 2:]
    if not isinstance(exc, ExcapError):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= MAX_PROBLEM_CHARS else text[:MAX_PROBLEM_CHARS - 3] + "..."


def stderr_warning(path: str, problem: str) -> None:
    """The one line a command prints for a file it skips."""
    import sys

    print(f"excap: warning: {path}: skipped: {problem}", file=sys.stderr)


def episode_files(directory: Path) -> Iterator[Path]:
    """Episode files under `directory`, sorted, skipping hidden folders (.excap, .recording, ...) and exports
    (excap.catalogue.not_episodes)."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                         and not is_export_folder(Path(root) / d, Path(directory)))
        for name in sorted(files):
            if name.endswith(EPISODE_SUFFIXES) and not name.startswith("."):
                yield Path(root) / name


def read_record(directory: Path, path: Path) -> EpisodeRecord:
    """Everything the catalogue keeps about one file, read from the file itself. EpisodeError (one line) if the
    file cannot be read as an episode at all."""
    from excap.episode.labels import effective_outcome
    from excap.episode.reader import EpisodeReader
    from excap.episode.validation import validate_episode

    try:
        stat = path.stat()
        record = EpisodeRecord(path=path.relative_to(directory).as_posix(), size=stat.st_size,
                               mtime_ns=stat.st_mtime_ns, sha256=file_sha256(path))
        record.problems = validate_episode(path)
        record.valid = not record.problems
        with EpisodeReader(path) as reader:
            meta = reader.metadata
            for key in METADATA_KEYS:
                setattr(record, key, _text(meta.get(key, "")))
            record.outcome = effective_outcome(reader.events(), record.outcome)
            record.recovered = bool(meta.get("recovered", False))
            duration = float(meta.get("duration_s", 0.0) or 0.0)
            record.streams = [{"path": s.path, "kind": s.kind, "samples": int(s.samples)} for s in reader.streams]
    except UNREADABLE_ERRORS as exc:
        raise EpisodeError(f"{path}: {one_line(exc, path)}") from exc
    record.duration_s = duration if math.isfinite(duration) else 0.0
    if not math.isfinite(duration):
        record.valid = False
        record.problems.append(f"{path}: duration_s is {duration}")
    record.started_ns = started_ns(record.started_at)
    return record


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class Catalogue:
    """The catalogue of one episode folder, kept in `catalog` (see `excap.catalogue.store.open_store`: the
    folder's own SQLite file by default). Use as a context manager, or call `close()`."""

    def __init__(self, directory: str | Path, database: str | Path | None = None,
                 catalog: str | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"{self.directory}: no such folder")
        self.store: CatalogueStore = open_store(self.directory, database or catalog)

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()

    def update(self, rebuild: bool = False, warn: Warn | None = None) -> IndexReport:
        """Bring the catalogue up to date with the files; `rebuild` forgets everything and reads every file.
        Each file that cannot be read is skipped, listed in the report and passed to `warn(path, problem)`."""
        report = IndexReport()
        store = self.store
        with store.transaction():
            if rebuild:
                store.clear()
            known = store.known()
            bad = store.unreadable()
            seen: set[str] = set()
            for path in episode_files(self.directory):
                relative = path.relative_to(self.directory).as_posix()
                try:
                    stat = path.stat()
                except OSError:
                    continue  # gone since the folder was listed
                seen.add(relative)
                identity = (stat.st_size, stat.st_mtime_ns)
                if known.get(relative) == identity:
                    report.unchanged += 1
                    continue
                if is_export_file(path):  # an exported dataset is not an episode
                    seen.discard(relative)
                    continue
                if relative in bad and bad[relative][:2] == identity:
                    report.unreadable.append((relative, bad[relative][2]))
                    continue
                try:
                    record = read_record(self.directory, path)
                except EpisodeError as exc:
                    problem = one_line(exc, path)
                    store.put_unreadable(relative, *identity, problem)
                    report.unreadable.append((relative, problem))
                    continue
                store.put_episode(record)
                (report.updated if relative in known else report.added).append(relative)
            for relative in sorted(set(known) - seen):
                store.forget(relative)
                report.removed.append(relative)
            for relative in set(bad) - seen - set(known):
                store.forget(relative)
        report.unreadable.sort()
        if warn is not None:
            for relative, problem in report.unreadable:
                warn(str(self.directory / relative), problem)
        return report

    def records(self, selection: EpisodeFilter | None = None, everywhere: bool = False) -> list[EpisodeRecord]:
        """Catalogued episodes matching `selection`, oldest first (then by path): a fixed order. With `everywhere`
        (a shared catalogue), those of every folder in it, other folders' files named by their locations."""
        return self.store.records(selection or EpisodeFilter(), everywhere)


def update_catalogue(directory: str | Path, rebuild: bool = False, warn: Warn | None = None,
                     catalog: str | None = None) -> IndexReport:
    with closing(Catalogue(directory, catalog=catalog)) as catalogue:
        return catalogue.update(rebuild=rebuild, warn=warn)


def select_episodes(directory: str | Path, selection: EpisodeFilter | None = None,
                    update: bool = True, warn: Warn | None = None, catalog: str | None = None) -> list[EpisodeRecord]:
    """Matching episodes of a folder, after bringing its catalogue up to date (unless `update` is False); files
    that cannot be read are skipped (and passed to `warn`)."""
    if selection is not None:
        selection.check()
    with closing(Catalogue(directory, catalog=catalog)) as catalogue:
        if update:
            catalogue.update(warn=warn)
        return catalogue.records(selection)


def records_table(records: list[EpisodeRecord]) -> str:
    """A table for people: one line per episode."""
    header = ("started (UTC)", "duration", "machine", "site", "task", "operator", "outcome", "state", "path")
    rows = [header]
    for r in records:
        state = "valid" if r.valid else f"INVALID ({len(r.problems)})"
        if r.recovered:
            state += " recovered"
        rows.append((r.started_at[:19].replace("T", " "), f"{r.duration_s:.1f} s",
                     f"{r.machine_kind}/{r.machine_model}/{r.machine_id}", r.site, r.task, r.operator_id, r.outcome,
                     state, r.path))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    total = sum(r.duration_s for r in records)
    lines.append(f"{len(records)} episodes, {total / 60:.1f} min")
    return "\n".join(lines)
