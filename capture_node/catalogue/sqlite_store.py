"""The embedded catalogue: one SQLite file per folder (DIR/.excap/catalogue.sqlite), private to its owner."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from excap.catalogue.rows import ORDER, RECORD_COLUMNS, EpisodeFilter, EpisodeRecord, record_row, row_record
from excap.catalogue.store import CatalogueStore
from excap.core.state_dir import create_private, private_file

CATALOGUE_VERSION = 3  # 3: `outcome` is the effective outcome (the latest `label` event's, else the recorded one)
SQLITE_NAME = "catalogue.sqlite"

_COLUMNS = (
    "path TEXT PRIMARY KEY", "episode_id TEXT", "machine_kind TEXT", "machine_model TEXT", "machine_id TEXT",
    "site TEXT", "task TEXT", "operator_id TEXT", "outcome TEXT", "started_at TEXT", "started_ns INTEGER",
    "recovered INTEGER", "duration_s REAL", "streams TEXT", "valid INTEGER", "problems TEXT", "sha256 TEXT",
    "size INTEGER", "mtime_ns INTEGER",
)
_UNREADABLE_COLUMNS = ("path TEXT PRIMARY KEY", "size INTEGER", "mtime_ns INTEGER", "problem TEXT")
_INSERT = (f"INSERT OR REPLACE INTO episodes ({', '.join(RECORD_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(RECORD_COLUMNS))})")


class SqliteStore(CatalogueStore):
    def __init__(self, database: Path) -> None:
        self.database = database
        self.location = str(database)
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
            if row is None or row[0] != str(CATALOGUE_VERSION):
                self._db.execute("DROP TABLE IF EXISTS episodes")
                self._db.execute("DROP TABLE IF EXISTS unreadable")
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(CATALOGUE_VERSION),))
            self._db.execute(f"CREATE TABLE IF NOT EXISTS episodes ({', '.join(_COLUMNS)})")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS unreadable ({', '.join(_UNREADABLE_COLUMNS)})")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db:
            yield

    def known(self) -> dict[str, tuple[int, int]]:
        return {row["path"]: (row["size"], row["mtime_ns"])
                for row in self._db.execute("SELECT path, size, mtime_ns FROM episodes")}

    def unreadable(self) -> dict[str, tuple[int, int, str]]:
        return {row["path"]: (row["size"], row["mtime_ns"], row["problem"])
                for row in self._db.execute("SELECT path, size, mtime_ns, problem FROM unreadable")}

    def clear(self) -> None:
        self._db.execute("DELETE FROM episodes")
        self._db.execute("DELETE FROM unreadable")

    def put_episode(self, record: EpisodeRecord) -> None:
        values = record_row(record)
        self._db.execute("DELETE FROM unreadable WHERE path = ?", (record.path,))
        self._db.execute(_INSERT, [values[name] for name in RECORD_COLUMNS])

    def put_unreadable(self, path: str, size: int, mtime_ns: int, problem: str) -> None:
        self._db.execute("DELETE FROM episodes WHERE path = ?", (path,))
        self._db.execute("INSERT OR REPLACE INTO unreadable VALUES (?, ?, ?, ?)", (path, size, mtime_ns, problem))

    def forget(self, path: str) -> None:
        self._db.execute("DELETE FROM episodes WHERE path = ?", (path,))
        self._db.execute("DELETE FROM unreadable WHERE path = ?", (path,))

    def records(self, selection: EpisodeFilter, everywhere: bool = False) -> list[EpisodeRecord]:
        where, values = selection.where("?")
        return [row_record(row) for row in self._db.execute(f"SELECT * FROM episodes{where} {ORDER}", values)]

    def close(self) -> None:
        self._db.close()
