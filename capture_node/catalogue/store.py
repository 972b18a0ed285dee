"""Where a catalogue is kept: the storage interface of its backends, and choosing one.

A catalogue is the embedded SQLite file of its folder (DIR/.excap/catalogue.sqlite, the default), another SQLite
file, or a PostgreSQL database shared by every station and the office (`--catalog postgresql://user@host:port/db`,
or the environment variable EXCAP_CATALOG). Every backend keeps the rows of `excap.catalogue.rows`; the indexing
itself (which files changed) is the same for all of them (`excap.catalogue.index`).

In a shared catalogue a row is keyed by its *source*, the folder it was indexed from (`host:/absolute/folder`), and
its path in that folder: re-indexing a folder, from any number of processes at once, replaces its rows in place.
The episodes of an object-store prefix have the prefix (`s3://bucket/prefix`) as their source, in either backend.
"""

from __future__ import annotations

import argparse
import os
import socket
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path

from excap.catalogue.rows import EpisodeFilter, EpisodeRecord

CATALOG_ENV = "EXCAP_CATALOG"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


class CatalogueStore(ABC):
    """The rows of one folder's catalogue: its episodes and the files that could not be read as episodes. Writes
    happen inside `transaction()`; `close()` releases the connection."""

    location: str  # for messages: the database file or the server (never with a password)
    source: str  # whose rows: a folder (`host:/folder` in a shared catalogue, empty in its own file) or a prefix

    @abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Commit the writes made inside, or none of them."""

    @abstractmethod
    def known(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of the catalogued episodes."""

    @abstractmethod
    def etags(self) -> dict[str, str]:
        """path -> ETag of the catalogued episodes (empty for local files)."""

    @abstractmethod
    def unreadable(self) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, problem) of the files kept aside."""

    @abstractmethod
    def clear(self) -> None:
        """Forget every row of this folder."""

    @abstractmethod
    def put_episode(self, record: EpisodeRecord) -> None:
        """Insert or replace the episode at `record.path` (and forget it as unreadable)."""

    @abstractmethod
    def put_unreadable(self, path: str, size: int, mtime_ns: int, problem: str) -> None:
        """Keep `path` aside as unreadable (and forget it as an episode)."""

    @abstractmethod
    def forget(self, path: str) -> None:
        """Drop `path` from both tables."""

    @abstractmethod
    def records(self, selection: EpisodeFilter, everywhere: bool = False) -> list[EpisodeRecord]:
        """Episodes of this folder matching `selection` in the catalogue's fixed order. With `everywhere`, those of
        every folder a shared catalogue holds, each other folder's paths given as their locations."""

    @abstractmethod
    def close(self) -> None: ...


def folder_source(directory: Path) -> str:
    """The identity of a catalogued folder in a shared catalogue: this host's name and the folder's real path."""
    return f"{socket.gethostname()}:{directory.resolve().as_posix()}"


def file_location(directory: Path, path: str) -> str:
    """Where a catalogued file lives, as a URL other machines can read the host from."""
    return f"file://{socket.gethostname()}{(directory.resolve() / path).as_posix()}"


def is_postgres(catalog: str | None) -> bool:
    return bool(catalog) and str(catalog).startswith(POSTGRES_SCHEMES)


def chosen_catalog(catalog: str | Path | None) -> str | None:
    """The catalogue asked for: `catalog`, else $EXCAP_CATALOG, else None (the folder's own SQLite file)."""
    if catalog:
        return str(catalog)
    return os.environ.get(CATALOG_ENV, "").strip() or None


def add_catalog_option(parser: argparse.ArgumentParser) -> None:
    """The --catalog option of every command that reads or writes a catalogue."""
    parser.add_argument("--catalog", default=None, metavar="URL_OR_FILE",
                        help=f"catalogue to use: postgresql://user@host:port/db (shared, needs the fleet extra) or an "
                        f"SQLite file (default: ${CATALOG_ENV}, else DIR/.excap/catalogue.sqlite)")
