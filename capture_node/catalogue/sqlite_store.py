"""The embedded catalogue: one SQLite file per folder (DIR/.excap/catalogue.sqlite), private to its owner.

Rows are keyed by (source, path): the folder's own files have the empty source, the episodes of an object-store
prefix indexed into this file (`excap index s3://... --catalog FILE`) have the prefix (`s3://bucket/prefix`) as
their source, so indexing one never touches the rows of the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from excap.catalogue.rows import ORDER, RECORD_COLUMNS, EpisodeFilter, EpisodeRecord, record_row, row_record
from excap.catalogue.store import CatalogueStore
from excap.core.state_dir import create_private, private_file

# 3: `outcome` is the effective outcome (the latest `label` event's, else the recorded one)
# 4: rows keyed by (source, path), with `location` and `etag` (object-store episodes); version 3 files are migrated
CATALOGUE_VERSION = 4
SQLITE_NAME = "catalogue.sqlite"
LOCAL_SOURCE = ""

_COLUMNS = (
    "source TEXT NOT NULL DEFAULT ''", "path TEXT NOT NULL", "episode_id TEXT", "machine_kind TEXT",
    "machine_model TEXT", "machine_id TEXT", "site TEXT", "task TEXT", "operator_id TEXT", "outcome TEXT",
    "started_at TEXT", "started_ns INTEGER", "recovered INTEGER", "duration_s REAL", "streams TEXT", "valid INTEGER",
    "problems TEXT", "sha256 TEXT", "size INTEGER", "mtime_ns INTEGER", "location TEXT NOT NULL DEFAULT ''",
    "etag TEXT NOT NULL DEFAULT ''", "PRIMARY KEY (source, path)",
)
_UNREADABLE_COLUMNS = ("source TEXT NOT NULL DEFAULT ''", "path TEXT NOT NULL", "size INTEGER", "mtime_ns INTEGER",
                       "problem TEXT", "PRIMARY KEY (source, path)")
_V3_COLUMNS = tuple(name for name in RECORD_COLUMNS if name not in ("location", "etag"))
_INSERT = (f"INSERT OR REPLACE INTO episodes (source, {', '.join(RECORD_COLUMNS)}) "
           f"VALUES (?, {', '.join('?' * len(RECORD_COLUMNS))})")


class SqliteStore(CatalogueStore):
    def __init__(self, database: Path, source: str = LOCAL_SOURCE) -> None:
        self.database = database
        self.location = str(database)
        self.source = source
        create_private(database)  # it holds raw operator ids
        self._db = sqlite3.connect(database)
        self._db.row_factory = sqlite3.Row
        self._prepare()
        for suffix in ("-journal", "-wal", "-shm"):
            private_file(database.with_name(database.name + suffix))

    def _prepare(self) -> None:
        with self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
            version = row[0] if row is not None else None
            if version == "3":
                self._migrate_from_3()
            elif version != str(CATALOGUE_VERSION):
                self._db.execute("DROP TABLE IF EXISTS episodes")
                self._db.execute("DROP TABLE IF EXISTS unreadable")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CATALOGUE_VERSION),))
            self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({', '.join(_COLUMNS)})")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS unreadable ({', '.join(_UNREADABLE_COLUMNS)})")

    def _migrate_from_3(self) -> None:
        """Version 3 rows are the folder's own files: they keep their values, get the empty source and their
        path as location (inside the caller's transaction: all of it or nothing)."""
        self._db.execute("ALTER TABLE episodes RENAME TO episodes_v3")
        self._db.execute("ALTER TABLE unreadable RENAME TO unreadable_v3")
        self._db.execute(f"CREATE TABLE episodes ({', '.join(_COLUMNS)})")
        self._db.execute(f"CREATE TABLE unreadable ({', '.join(_UNREADABLE_COLUMNS)})")
        columns = ", ".join(_V3_COLUMNS)
        self._db.execute(f"INSERT INTO episodes (source, location, {columns}) "
                         f"SELECT '', path, {columns} FROM episodes_v3")
        self._db.execute("INSERT INTO unreadable (source, path, size, mtime_ns, problem) "
                         "SELECT '', path, size, mtime_ns, problem FROM unreadable_v3")
        self._db.execute("DROP TABLE episodes_v3")
        self._db.execute("DROP TABLE unreadable_v3")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db:
            yield

    def known(self) -> dict[str, tuple[int, int]]:
        return {row["path"]: (row["size"], row["mtime_ns"]) for row in self._db.execute(
            "SELECT path, size, mtime_ns FROM episodes WHERE source = ?", (self.source,))}

    def etags(self) -> dict[str, str]:
        return {row["path"]: row["etag"] for row in self._db.execute(
            "SELECT path, etag FROM episodes WHERE source = ?", (self.source,))}

    def unreadable(self) -> dict[str, tuple[int, int, str]]:
        return {row["path"]: (row["size"], row["mtime_ns"], row["problem"]) for row in self._db.execute(
            "SELECT path, size, mtime_ns, problem FROM unreadable WHERE source = ?", (self.source,))}

    def clear(self) -> None:
        self._db.execute("DELETE FROM episodes WHERE source = ?", (self.source,))
        self._db.execute("DELETE FROM unreadable WHERE source = ?", (self.source,))

    def put_episode(self, record: EpisodeRecord) -> None:
        values = record_row(record)
        values["location"] = record.location or record.path
        self._db.execute("DELETE FROM unreadable WHERE source = ? AND path = ?", (self.source, record.path))
        self._db.execute(_INSERT, [self.source, *(values[name] for name in RECORD_COLUMNS)])

    def put_unreadable(self, path: str, size: int, mtime_ns: int, problem: str) -> None:
        self._db.execute("DELETE FROM episodes WHERE source = ? AND path = ?", (self.source, path))
        self._db.execute("INSERT OR REPLACE INTO unreadable VALUES (?, ?, ?, ?, ?)",
                         (self.source, path, size, mtime_ns, problem))

    def forget(self, path: str) -> None:
        self._db.execute("DELETE FROM episodes WHERE source = ? AND path = ?", (self.source, path))
        self._db.execute("DELETE FROM unreadable WHERE source = ? AND path = ?", (self.source, path))

    def records(self, selection: EpisodeFilter, everywhere: bool = False) -> list[EpisodeRecord]:
        where, values = selection.where("?")
        if not everywhere:
            where = f"{where} AND source = ?" if where else " WHERE source = ?"
            values.append(self.source)
        rows = self._db.execute(f"SELECT *, source = ? AS here FROM episodes{where} {ORDER}", [self.source, *values])
        return [row_record({**dict(row), "path": row["path"] if row["here"] else row["location"]}) for row in rows]

    def close(self) -> None:
        self._db.close()
