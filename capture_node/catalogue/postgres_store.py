"""A catalogue in PostgreSQL, shared by every station and the office (needs the `fleet` extra: psycopg 3).

Rows are keyed by (source, path): the folder they were indexed from (`host:/absolute/folder`) and the file's path
in it; `location` says where the file lives (a file:// URL naming the host). Every write is one transaction of
`INSERT ... ON CONFLICT DO UPDATE` (or deletes), so processes indexing at once and re-indexing the same files leave
one row per file. A connection lost mid-way (the server restarting) is re-opened with a bounded backoff and the
transaction run again; if the server stays away, CatalogueError (one line) and the next run completes the work. A
server that cannot be reached when the catalogue is opened is that one line at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from excap.catalogue.rows import RECORD_COLUMNS, EpisodeFilter, EpisodeRecord, record_row, row_record
from excap.catalogue.store import CatalogueStore, file_location
from excap.core.errors import CatalogueError, MissingExtraError

if TYPE_CHECKING:
    import psycopg

SCHEMA_VERSION = 2  # 2: `etag` (the ETag of an object-store episode); version 1 catalogues are migrated in place
# Backoff after a lost connection: 0.1 s, doubling up to 2 s, for at most RETRY_SECONDS in all.
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 2.0
RETRY_SECONDS = 30.0
CONNECT_TIMEOUT_S = 5
_LOCK_KEY = 0x65786361  # pg_advisory_xact_lock key: schema changes run one at a time

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS excap_catalogue_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS excap_episodes (
        source TEXT NOT NULL, path TEXT NOT NULL, location TEXT NOT NULL,
        episode_id TEXT NOT NULL, machine_kind TEXT NOT NULL, machine_model TEXT NOT NULL, machine_id TEXT NOT NULL,
        site TEXT NOT NULL, task TEXT NOT NULL, operator_id TEXT NOT NULL, outcome TEXT NOT NULL,
        started_at TEXT NOT NULL, started_ns BIGINT, recovered BOOLEAN NOT NULL, duration_s DOUBLE PRECISION NOT NULL,
        streams TEXT NOT NULL, valid BOOLEAN NOT NULL, problems TEXT NOT NULL, sha256 TEXT NOT NULL,
        size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, indexed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        etag TEXT NOT NULL DEFAULT '', PRIMARY KEY (source, path))""",
    """CREATE INDEX IF NOT EXISTS excap_episodes_started ON excap_episodes (started_ns)""",
    """CREATE INDEX IF NOT EXISTS excap_episodes_content ON excap_episodes (episode_id, sha256)""",
    """CREATE TABLE IF NOT EXISTS excap_unreadable (
        source TEXT NOT NULL, path TEXT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL,
        problem TEXT NOT NULL, PRIMARY KEY (source, path))""",
)
_EPISODE_COLUMNS = ("source", *RECORD_COLUMNS)
_UPSERT_EPISODE = (
    f"INSERT INTO excap_episodes ({', '.join(_EPISODE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_EPISODE_COLUMNS))}) "
    "ON CONFLICT (source, path) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in _EPISODE_COLUMNS if name not in ("source", "path"))
    + ", indexed_at = now()")
_UPSERT_UNREADABLE = (
    "INSERT INTO excap_unreadable (source, path, size, mtime_ns, problem) VALUES (%s, %s, %s, %s, %s) "
    "ON CONFLICT (source, path) DO UPDATE SET size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns, "
    "problem = EXCLUDED.problem")
# Byte order, whatever the server's locale: the same order as SQLite's.
_ORDER = 'ORDER BY started_ns NULLS FIRST, started_at COLLATE "C", path COLLATE "C"'

T = TypeVar("T")


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingExtraError("a postgresql:// catalogue needs the fleet extra: pip install 'excap[fleet]'") from exc
    return psycopg


def shown_url(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}@{host}"


class PostgresStore(CatalogueStore):
    def __init__(self, url: str, source: str, directory: Path | None) -> None:
        self._driver = _psycopg()
        self.url = url
        self.location = shown_url(url)
        self.source = source
        self.directory = directory
        self._db: psycopg.Connection[Any] | None = None
        self._retrying(self._prepare, retry=False)  # a server that cannot be reached at all: say so at once

    # ------------------------------------------------------------ connection and retries

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is None or self._db.closed:
            self._db = self._driver.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
        return self._db

    def _retrying(self, action: Callable[[psycopg.Connection[Any]], T], retry: bool = True) -> T:
        """Run `action(connection)` in one transaction; on a lost connection reconnect (bounded backoff) and run it
        again. CatalogueError (one line) if the server stays unreachable (at once without `retry`), or refuses
        the work."""
        deadline = time.monotonic() + RETRY_SECONDS
        delay = FIRST_DELAY_S
        while True:
            try:
                db = self._connection()
                with db.transaction():
                    return action(db)
            except self._driver.OperationalError as exc:
                self._drop()
                if not retry or time.monotonic() + delay > deadline:
                    raise CatalogueError(f"{self.location}: {_one_line(exc)}") from exc
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_S)
            except self._driver.Error as exc:
                raise CatalogueError(f"{self.location}: {_one_line(exc)}") from exc

    def _drop(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            finally:
                self._db = None

    def _prepare(self, db: psycopg.Connection[Any]) -> None:
        """Create or migrate the tables unless they are there in this version: a role that may only read and write
        them (no CREATE on the schema) works on a catalogue another role created."""
        if db.execute("SELECT to_regclass('excap_catalogue_meta')").fetchone() not in (None, (None,)):
            row = db.execute("SELECT value FROM excap_catalogue_meta WHERE key = 'version'").fetchone()
            if row is not None and row[0] == str(SCHEMA_VERSION):
                return
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        for statement in _SCHEMA:
            db.execute(statement)
        row = db.execute("SELECT value FROM excap_catalogue_meta WHERE key = 'version'").fetchone()
        if row is None:
            db.execute("INSERT INTO excap_catalogue_meta VALUES ('version', %s)", (str(SCHEMA_VERSION),))
        elif row[0] == "1":
            db.execute("ALTER TABLE excap_episodes ADD COLUMN IF NOT EXISTS etag TEXT NOT NULL DEFAULT ''")
            db.execute("UPDATE excap_catalogue_meta SET value = %s WHERE key = 'version'", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise CatalogueError(f"{self.location}: catalogue schema version {row[0]}, this excap reads version "
                                 f"{SCHEMA_VERSION}")

    # ------------------------------------------------------------ the store

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Writes here are each their own retried transaction (a lost connection must not undo a whole run)."""
        yield

    def known(self) -> dict[str, tuple[int, int]]:
        rows = self._retrying(lambda db: db.execute(
            "SELECT path, size, mtime_ns FROM excap_episodes WHERE source = %s", (self.source,)).fetchall())
        return {path: (size, mtime_ns) for path, size, mtime_ns in rows}

    def etags(self) -> dict[str, str]:
        rows = self._retrying(lambda db: db.execute(
            "SELECT path, etag FROM excap_episodes WHERE source = %s", (self.source,)).fetchall())
        return dict(rows)

    def unreadable(self) -> dict[str, tuple[int, int, str]]:
        rows = self._retrying(lambda db: db.execute(
            "SELECT path, size, mtime_ns, problem FROM excap_unreadable WHERE source = %s", (self.source,)).fetchall())
        return {path: (size, mtime_ns, problem) for path, size, mtime_ns, problem in rows}

    def clear(self) -> None:
        def clear(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM excap_episodes WHERE source = %s", (self.source,))
            db.execute("DELETE FROM excap_unreadable WHERE source = %s", (self.source,))
        self._retrying(clear)

    def put_episode(self, record: EpisodeRecord) -> None:
        values = {**record_row(record), "source": self.source}
        if not record.location and self.directory is not None:
            values["location"] = file_location(self.directory, record.path)

        def put(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM excap_unreadable WHERE source = %s AND path = %s", (self.source, record.path))
            db.execute(_UPSERT_EPISODE, [values[name] for name in _EPISODE_COLUMNS])
        self._retrying(put)

    def put_unreadable(self, path: str, size: int, mtime_ns: int, problem: str) -> None:
        def put(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM excap_episodes WHERE source = %s AND path = %s", (self.source, path))
            db.execute(_UPSERT_UNREADABLE, (self.source, path, size, mtime_ns, problem))
        self._retrying(put)

    def forget(self, path: str) -> None:
        def forget(db: psycopg.Connection[Any]) -> None:
            db.execute("DELETE FROM excap_episodes WHERE source = %s AND path = %s", (self.source, path))
            db.execute("DELETE FROM excap_unreadable WHERE source = %s AND path = %s", (self.source, path))
        self._retrying(forget)

    def records(self, selection: EpisodeFilter, everywhere: bool = False) -> list[EpisodeRecord]:
        where, values = selection.where("%s")
        if not everywhere:
            where = f"{where} AND source = %s" if where else " WHERE source = %s"
            values.append(self.source)
        query = f"SELECT *, source = %s AS here FROM excap_episodes{where} {_ORDER}"
        rows = self._retrying(lambda db: _dict_rows(db, query, [self.source, *values]))
        return [row_record(_as_seen(row)) for row in rows]

    def close(self) -> None:
        self._drop()


def _as_seen(row: dict[str, Any]) -> dict[str, Any]:
    """A row as a record of the store's own folder (a local file's location is its path there, as in the folder's
    own catalogue) or of another source (its path is its location)."""
    if not row["here"]:
        return {**row, "path": row["location"]}
    if row["location"].startswith("file://"):
        return {**row, "location": row["path"]}
    return row


def _dict_rows(db: psycopg.Connection[Any], query: str, values: list[Any]) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    with db.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query, values).fetchall()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
