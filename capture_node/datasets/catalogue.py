"""The episode catalogue: an embedded SQLite database of the episodes in one folder (DIR/.excap/catalogue.sqlite).

It only holds what can be derived from the episode files (metadata, duration, streams, validation state,
SHA-256, size, mtime), so it can always be rebuilt from them. `update_catalogue` is incremental: files whose
size and mtime are unchanged are skipped, new and changed files are (re)read, rows of deleted files go.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from capture_node.episode_reader import EpisodeReader
from capture_node.errors import ConfigError, EpisodeError
from capture_node.validation import validate_episode

CATALOGUE_VERSION = 1
EXCAP_DIR = ".excap"
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

    def text(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{self.unchanged} unchanged")


def parse_time_bound(text: str, *, upper: bool) -> int:
    """A --since/--until value as UTC nanoseconds. A date alone means the whole day: as an upper bound the
    next midnight (exclusive); a date and time is exact (inclusive). Times without a zone are UTC."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + (timedelta(days=1) if upper else timedelta())
            return _utc_ns(moment) - (1 if upper else 0)
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not an ISO 8601 date or date and time") from exc
    return _utc_ns(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _utc_ns(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def started_ns(started_at: str) -> int | None:
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    return _utc_ns(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


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
    """Everything the catalogue keeps about one file, read from the file itself."""
    stat = path.stat()
    record = EpisodeRecord(path=path.relative_to(directory).as_posix(), size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                           sha256=file_sha256(path))
    record.problems = validate_episode(path)
    record.valid = not record.problems
    try:
        with EpisodeReader(path) as reader:
            meta = reader.metadata
            for key in METADATA_KEYS:
                setattr(record, key, str(meta.get(key, "")))
            record.recovered = bool(meta.get("recovered", False))
            record.duration_s = float(meta.get("duration_s", 0.0) or 0.0)
            record.streams = [{"path": s.path, "kind": s.kind, "samples": s.samples} for s in reader.streams]
    except (EpisodeError, OSError, KeyError, ValueError, TypeError) as exc:
        if record.valid:
            record.valid = False
            record.problems = [f"{path}: cannot be read: {exc}"]
    record.started_ns = started_ns(record.started_at)
    return record


class Catalogue:
    """The catalogue of one episode folder. Use as a context manager, or call `close()`."""

    def __init__(self, directory: str | Path, database: str | Path | None = None) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ConfigError(f"{self.directory}: no such folder")
        self.database = Path(database) if database else self.directory / EXCAP_DIR / CATALOGUE_NAME
        self.database.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.database)
        self._db.row_factory = sqlite3.Row
        self._prepare()

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
            if row is None or int(row[0]) != CATALOGUE_VERSION:
                self._db.execute("DROP TABLE IF EXISTS episodes")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CATALOGUE_VERSION),))
            self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({', '.join(_COLUMNS)})")

    def update(self, rebuild: bool = False) -> IndexReport:
        """Bring the catalogue up to date with the files; `rebuild` forgets everything and reads every file."""
        report = IndexReport()
        with self._db:
            if rebuild:
                self._db.execute("DELETE FROM episodes")
            known = {row["path"]: (row["size"], row["mtime_ns"])
                     for row in self._db.execute("SELECT path, size, mtime_ns FROM episodes")}
            seen: set[str] = set()
            for path in episode_files(self.directory):
                relative = path.relative_to(self.directory).as_posix()
                seen.add(relative)
                stat = path.stat()
                if known.get(relative) == (stat.st_size, stat.st_mtime_ns):
                    report.unchanged += 1
                    continue
                self._store(read_record(self.directory, path))
                (report.updated if relative in known else report.added).append(relative)
            for relative in sorted(set(known) - seen):
                self._db.execute("DELETE FROM episodes WHERE path = ?", (relative,))
                report.removed.append(relative)
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


def update_catalogue(directory: str | Path, rebuild: bool = False) -> IndexReport:
    with closing(Catalogue(directory)) as catalogue:
        return catalogue.update(rebuild=rebuild)


def select_episodes(directory: str | Path, selection: EpisodeFilter | None = None,
                    update: bool = True) -> list[EpisodeRecord]:
    """Matching episodes of a folder, after bringing its catalogue up to date (unless `update` is False)."""
    with closing(Catalogue(directory)) as catalogue:
        if update:
            catalogue.update()
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
