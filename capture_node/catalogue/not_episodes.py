"""What in an episode folder is never an episode: exported datasets.

Exports are written beside the episodes (usually into DIR/exports/) and may be HDF5 files themselves (robomimic);
the catalogue, and every tool that lists episodes through it (list, ledger, export, the delivery API), leaves them
out without a warning:

- the folder DIR/exports/ and everything below it;
- any folder holding an export marker (MARKERS: LeRobot's meta/info.json, excap's export report), and below it;
- an HDF5 file carrying the root attribute `excap_export` (the report a robomimic export writes into its file), or
  laid out as a robomimic dataset (a `data` group with `env_args` and a `mask` group).
"""

from __future__ import annotations

from pathlib import Path

import h5py

__all__ = ["EXPORTS_DIR", "EXPORT_ATTRIBUTE", "MARKERS", "is_export_file", "is_export_folder"]

EXPORTS_DIR = "exports"
EXPORT_ATTRIBUTE = "excap_export"
MARKERS = ("meta/info.json", "meta/excap_export.json", "excap_export.json")


def is_export_folder(folder: Path, root: Path) -> bool:
    """Whether `folder` (inside the episode folder `root`) is DIR/exports or holds an export marker."""
    if folder.name == EXPORTS_DIR and folder.parent == root:
        return True
    return any((folder / marker).is_file() for marker in MARKERS)


def is_export_file(path: Path) -> bool:
    """Whether the HDF5 file at `path` is an exported dataset (False for anything that cannot be read as HDF5)."""
    try:
        with h5py.File(path, "r") as handle:
            if EXPORT_ATTRIBUTE in handle.attrs:
                return True
            data = handle.get("data")
            return isinstance(data, h5py.Group) and "env_args" in data.attrs and isinstance(handle.get("mask"),
                                                                                             h5py.Group)
    except Exception:  # not HDF5, truncated, damaged: the catalogue reports it as it always did
        return False
