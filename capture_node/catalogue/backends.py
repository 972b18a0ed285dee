"""Opening a folder's catalogue in the backend its location names (see `excap.catalogue.store`)."""

from __future__ import annotations

from pathlib import Path

from excap.catalogue.store import CatalogueStore, chosen_catalog, folder_source, is_postgres


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
