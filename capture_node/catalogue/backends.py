"""Opening a folder's catalogue in the backend its location names (see `excap.catalogue.store`)."""

from __future__ import annotations

from pathlib import Path

from excap.catalogue.store import CATALOG_ENV, CatalogueStore, chosen_catalog, folder_source, is_postgres
from excap.core.errors import ConfigError


def open_store(directory: Path, catalog: str | Path | None = None) -> CatalogueStore:
    """The store of `directory`'s catalogue in `catalog` (see `chosen_catalog`): a postgresql:// URL (needs the
    fleet extra) or an SQLite file path."""
    chosen = chosen_catalog(catalog)
    if chosen is not None and is_postgres(chosen):
        from excap.catalogue.postgres_store import PostgresStore

        return PostgresStore(chosen, folder_source(directory), directory)
    from excap.catalogue.sqlite_store import SQLITE_NAME, SqliteStore
    from excap.core.state_dir import STATE_DIR

    return SqliteStore(Path(chosen) if chosen else directory / STATE_DIR / SQLITE_NAME)


def open_prefix_store(prefix: str, catalog: str | Path | None = None) -> CatalogueStore:
    """The store of the rows of an object-store prefix (`s3://bucket/prefix`, their source) in `catalog`, or
    $EXCAP_CATALOG: a postgresql:// URL or an SQLite file. ConfigError (one line) if neither names one: a prefix
    has no folder of its own to keep a catalogue in."""
    chosen = chosen_catalog(catalog)
    if chosen is None:
        raise ConfigError(f"{prefix}: an object-store prefix is catalogued in --catalog URL_OR_FILE (or "
                          f"${CATALOG_ENV}): none given")
    if is_postgres(chosen):
        from excap.catalogue.postgres_store import PostgresStore

        return PostgresStore(chosen, prefix, None)
    from excap.catalogue.sqlite_store import SqliteStore

    return SqliteStore(Path(chosen), prefix)
