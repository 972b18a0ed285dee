"""The episode catalogue: an embedded SQLite database of the episodes in one folder (DIR/.excap/catalogue.sqlite).

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

import hashlib
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.core.state_dir import STATE_DIR, create_private, private_file

CATALOGUE_VERSION = 3  # 3: `outcome` is the effective outcome (the latest `label` event's, else the recorded one)
EXCAP_DIR = STATE_DIR
CATALOGUE_NAME = "catalogue.sqlite"
EPISODE_SUFFIXES = (".h5", ".hdf5")
METADATA_KEYS = ("episode_id", "machine_kind", "machine_model", "machine_id", "site", "task", "operator_id",
                 "outcome", "started_at")

_COLUMNS = (
    "path TEXT PRIMARY KEY", "episode_id TEXT", "machine_kind TEXT", "machine_model TEXT", "machine_id TEXT",
    "site TEXT", "task TEXT", "operator_id TEXT", "outcome TEXT", "started_at TEXT", "started_ns INTEGER",
    "recovered INTEGER", "duration_s REAL", "streams TEXT", "valid INTEGER", "problems TEXT", "sha256 TEXT",
    "size INTEGER", "mtime_ns INTEGER",
)
_UNREADABLE_COLUMNS = ("path TEXT PRIMARY KEY", "size INTEGER", "mtime_ns INTEGER", "problem TEXT")
# What reading a malformed file can raise, here or in h5py and numpy below the readers: such a file is skipped with
# its reason, and the folder tool goes on. Anything else is a defect and is not hidden.
UNREADABLE_ERRORS = (ExcapError, OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError)
MAX_PROBLEM_CHARS = 300
# Times are int64 nanoseconds since 1970 (as SQLite stores them): the range they can express, in whole days.
EARLIEST_DATE = date(1678, 1, 1)
LATEST_DATE = date(2261, 12, 31)
Warn = Callable[[str, str], None]  # (file, problem)


@dataclass
class EpisodeRecord:
    """One catalogued file. `path` is relative to the catalogued folder (POSIX separators)."""

    path: str
    episode_id: str = ""
    machine_kind: str = ""
    machine_model: str = ""
    machine_id: str = ""
    site: str = ""
    task: str = ""
    operator_id: str = ""
    outcome: str = ""
    started_at: str = ""
    started_ns: int | None = None
    recovered: bool = False
    duration_s: float = 0.0
    streams: list[dict[str, Any]] = field(default_factory=list)  # [{path, kind, samples}]
    valid: bool = False
    problems: list[str] = field(default_factory=list)
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relative path, problem), skipped

    def text(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{self.unchanged} unchanged" + (f", {len(self.unreadable)} skipped" if self.unreadable else ""))


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


def parse_time_bound(text: str, *, upper: bool) -> int:
    """A --since/--until value as UTC nanoseconds. A date alone means the whole day: as an upper bound the
    next midnight (exclusive); a date and time is exact (inclusive). Times without a zone are UTC. Dates outside
    EARLIEST_DATE..LATEST_DATE are refused (ConfigError), as is anything but ISO 8601."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except ValueError as exc:
        raise ConfigError(f"{shown!r} is not an ISO 8601 date or date and time") from exc
    try:
        in_range = EARLIEST_DATE <= moment.astimezone(UTC).date() <= LATEST_DATE
    except OverflowError:
        in_range = False
    if not in_range:
        raise ConfigError(f"{shown!r} is out of range (dates from {EARLIEST_DATE} to {LATEST_DATE})")
    if len(text) == 10 and upper:
        return _utc_ns(moment + timedelta(days=1)) - 1
    return _utc_ns(moment)


def _utc_ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def started_ns(started_at: str) -> int | None:
    """The start time as UTC nanoseconds; None if it is not an ISO 8601 time within the catalogue's range."""
    try:
        return parse_time_bound(started_at, upper=False)
    except ConfigError:
        return None


@dataclass
class EpisodeFilter:
    """Which catalogued episodes to select; None means any. Bounds are inclusive."""

    machine_kind: str | None = None
    machine_model: str | None = None
    site: str | None = None
    task: str | None = None
    operator_id: str | None = None
    outcome: str | None = None
    since: str | None = None  # on started_at, see parse_time_bound
    until: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    valid: bool | None = None

    def check(self) -> EpisodeFilter:
        """Raise ConfigError for a value no episode could be selected by (bad dates, non-finite durations)."""
        self.where()
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number of seconds, not {value}")
        return self

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        values: list[Any] = []
        for name in ("machine_kind", "machine_model", "site", "task", "operator_id", "outcome"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} = ?")
                values.append(value)
        if self.since is not None:
            clauses.append("started_ns >= ?")
            values.append(parse_time_bound(self.since, upper=False))
        if self.until is not None:
            clauses.append("started_ns <= ?")
            values.append(parse_time_bound(self.until, upper=True))
        if self.min_duration is not None:
            clauses.append("duration_s >= ?")
            values.append(self.min_duration)
        if self.max_duration is not None:
            clauses.append("duration_s <= ?")
            values.append(self.max_duration)
        if self.valid is not None:
            clauses.append("valid = ?")
            values.append(int(self.valid))
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def episode_files(directory: Path) -> Iterator[Path]:
    """Episode files under `directory`, sorted, skipping hidden folders (.excap, .recording, ...)."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
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
    """The catalogue of one episode folder. Use as a context manager, or call `close()`."""

    def __init__(self, directory: str | Path, database: str | Path | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"{self.directory}: no such folder")
        self.database = Path(database) if database else self.directory / EXCAP_DIR / CATALOGUE_NAME
        create_private(self.database)  # it holds raw operator ids
        self._db = sqlite3.connect(self.database)
        self._db.row_factory = sqlite3.Row
        self._prepare()
        for suffix in ("-journal", "-wal", "-shm"):
            private_file(self.database.with_name(self.database.name + suffix))

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def _prepare(self) -> None:
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            if row is None or row[0] != str(CATALOGUE_VERSION):
                self._db.execute("DROP TABLE IF EXISTS episodes")
                self._db.execute("DROP TABLE IF EXISTS unreadable")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CATALOGUE_VERSION),))
            self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({', '.join(_COLUMNS)})")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS unreadable ({', '.join(_UNREADABLE_COLUMNS)})")

    def update(self, rebuild: bool = False, warn: Warn | None = None) -> IndexReport:
        """Bring the catalogue up to date with the files; `rebuild` forgets everything and reads every file.
        Each file that cannot be read is skipped, listed in the report and passed to `warn(path, problem)`."""
        report = IndexReport()
        with self._db:
            if rebuild:
                self._db.execute("DELETE FROM episodes")
                self._db.execute("DELETE FROM unreadable")
            known = {row["path"]: (row["size"], row["mtime_ns"])
                     for row in self._db.execute("SELECT path, size, mtime_ns FROM episodes")}
            bad = {row["path"]: (row["size"], row["mtime_ns"], row["problem"])
                   for row in self._db.execute("SELECT path, size, mtime_ns, problem FROM unreadable")}
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
                if relative in bad and bad[relative][:2] == identity:
                    report.unreadable.append((relative, bad[relative][2]))
                    continue
                self._db.execute("DELETE FROM unreadable WHERE path = ?", (relative,))
                try:
                    record = read_record(self.directory, path)
                except EpisodeError as exc:
                    problem = one_line(exc, path)
                    self._db.execute("DELETE FROM episodes WHERE path = ?", (relative,))
                    self._db.execute("INSERT INTO unreadable VALUES (?, ?, ?, ?)", (relative, *identity, problem))
                    report.unreadable.append((relative, problem))
                    continue
                self._store(record)
                (report.updated if relative in known else report.added).append(relative)
            for relative in sorted(set(known) - seen):
                self._db.execute("DELETE FROM episodes WHERE path = ?", (relative,))
                report.removed.append(relative)
            for relative in set(bad) - seen:
                self._db.execute("DELETE FROM unreadable WHERE path = ?", (relative,))
        report.unreadable.sort()
        if warn is not None:
            for relative, problem in report.unreadable:
                warn(str(self.directory / relative), problem)
        return report

    def _store(self, record: EpisodeRecord) -> None:
        values = asdict(record)
        values["streams"] = json.dumps(record.streams, sort_keys=True)
        values["problems"] = json.dumps(record.problems)
        values["recovered"] = int(record.recovered)
        values["valid"] = int(record.valid)
        names = [f.name for f in fields(EpisodeRecord)]
        self._db.execute(f"INSERT OR REPLACE INTO episodes ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                         [values[n] for n in names])

    def records(self, selection: EpisodeFilter | None = None) -> list[EpisodeRecord]:
        """Catalogued episodes matching `selection`, oldest first (then by path): a fixed order."""
        where, values = (selection or EpisodeFilter()).where()
        rows = self._db.execute(f"SELECT * FROM episodes{where} ORDER BY started_ns, started_at, path", values)
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> EpisodeRecord:
    values = dict(row)
    values["streams"] = json.loads(values["streams"] or "[]")
    values["problems"] = json.loads(values["problems"] or "[]")
    values["recovered"] = bool(values["recovered"])
    values["valid"] = bool(values["valid"])
    return EpisodeRecord(**values)


def update_catalogue(directory: str | Path, rebuild: bool = False, warn: Warn | None = None) -> IndexReport:
    with closing(Catalogue(directory)) as catalogue:
        return catalogue.update(rebuild=rebuild, warn=warn)


def select_episodes(directory: str | Path, selection: EpisodeFilter | None = None,
                    update: bool = True, warn: Warn | None = None) -> list[EpisodeRecord]:
    """Matching episodes of a folder, after bringing its catalogue up to date (unless `update` is False); files
    that cannot be read are skipped (and passed to `warn`)."""
    if selection is not None:
        selection.check()
    with closing(Catalogue(directory)) as catalogue:
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
