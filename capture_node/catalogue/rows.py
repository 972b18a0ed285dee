"""The catalogue's row model, shared by its storage backends: what one catalogued file is (`EpisodeRecord`), how it
is stored as a row (`record_row`, `row_record`) and how a selection (`EpisodeFilter`) becomes an SQL WHERE clause with
parameters (never values formatted into the SQL text).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any

from excap.core.errors import ConfigError

# Times are int64 nanoseconds since 1970 (as the catalogue stores them): the range they can express, in whole days.
EARLIEST_DATE = date(1678, 1, 1)
LATEST_DATE = date(2261, 12, 31)


@dataclass
class EpisodeRecord:
    """One catalogued file. `path` is relative to the catalogued folder or object-store prefix (POSIX separators);
    `location` is where the file lives: for an object `s3://bucket/key`, for a local file its path relative to
    the folder in the folder's own catalogue (a file:// URL naming the host in a shared one). `etag` is an
    object's ETag (empty for local files); `mtime_ns` its modification time."""

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
    location: str = ""
    etag: str = ""

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

    def where(self, placeholder: str = "?") -> tuple[str, list[Any]]:
        """The SQL WHERE clause (empty if nothing is filtered) and its parameters, in the driver's placeholder
        style (`?` for sqlite3, `%s` for psycopg). Only column names from this class are written into the text;
        every value is a parameter."""
        clauses: list[str] = []
        values: list[Any] = []
        for name in ("machine_kind", "machine_model", "site", "task", "operator_id", "outcome"):
            value = getattr(self, name)
            if value is not None:
                clauses.append(f"{name} = {placeholder}")
                values.append(value)
        if self.since is not None:
            clauses.append(f"started_ns >= {placeholder}")
            values.append(parse_time_bound(self.since, upper=False))
        if self.until is not None:
            clauses.append(f"started_ns <= {placeholder}")
            values.append(parse_time_bound(self.until, upper=True))
        if self.min_duration is not None:
            clauses.append(f"duration_s >= {placeholder}")
            values.append(self.min_duration)
        if self.max_duration is not None:
            clauses.append(f"duration_s <= {placeholder}")
            values.append(self.max_duration)
        if self.valid is not None:
            clauses.append(f"valid = {placeholder}")
            values.append(self.valid)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", values


RECORD_COLUMNS = tuple(f.name for f in fields(EpisodeRecord))
# The order every backend lists records in: oldest first (unknown start times first), then by path.
ORDER = "ORDER BY started_ns NULLS FIRST, started_at, path"


def record_row(record: EpisodeRecord) -> dict[str, Any]:
    """A record as the values of one row: lists as JSON text, flags as booleans."""
    values = asdict(record)
    values["streams"] = json.dumps(record.streams, sort_keys=True)
    values["problems"] = json.dumps(record.problems)
    values["recovered"] = bool(record.recovered)
    values["valid"] = bool(record.valid)
    return values


def row_record(row: Mapping[str, Any]) -> EpisodeRecord:
    """A stored row (with at least the RECORD_COLUMNS) as a record."""
    values = {name: row[name] for name in RECORD_COLUMNS}
    values["streams"] = json.loads(values["streams"] or "[]")
    values["problems"] = json.loads(values["problems"] or "[]")
    values["recovered"] = bool(values["recovered"])
    values["valid"] = bool(values["valid"])
    return EpisodeRecord(**values)
