"""The episode catalogue of a folder: an embedded SQLite database (DIR/.excap/catalogue.sqlite) of every
episode's metadata and validity, or a PostgreSQL catalogue shared by a fleet (`store`, `postgres_store`), kept up
to date by file size and time, and filtered selections of it (the `excap index` and `excap list` commands, exports,
the ledger and the delivery API use it). `rows` is the row model and filter SQL both backends share.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.catalogue.index import Catalogue, records_table, select_episodes, update_catalogue
    from excap.catalogue.rows import EpisodeFilter, EpisodeRecord, IndexReport

__all__ = ["Catalogue", "EpisodeFilter", "EpisodeRecord", "IndexReport", "records_table", "select_episodes",
           "update_catalogue"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.catalogue.index": ["Catalogue", "records_table", "select_episodes", "update_catalogue"],
    "excap.catalogue.rows": ["EpisodeFilter", "EpisodeRecord", "IndexReport"],
})
