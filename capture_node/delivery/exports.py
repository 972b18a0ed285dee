"""Exported datasets in a served folder: which files a dataset delivers (DIR/exports/<dataset>/, no hidden names, no
symlinks leading outside) and which episodes it was exported from (the provenance its export writes: LeRobot's
episode table and JSON reports, the `excap_episode_id` attribute of each demo in a robomimic file)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError
from excap.delivery.partners import check_name

__all__ = ["EXPORTS_DIR", "PARQUET_ID_COLUMN", "contained", "dataset_dir", "dataset_files", "export_episode_ids"]

EXPORTS_DIR = "exports"
PARQUET_ID_COLUMN = "excap/episode_id"
HDF5_ID_ATTRIBUTE = "excap_episode_id"
HDF5_SUFFIXES = (".hdf5", ".h5")
_ID_KEYS = ("episode_id", "source_episode_id", "excap_episode_id")
_ID_LIST_KEYS = ("episode_ids", "source_episode_ids")
_MAX_JSON_BYTES = 64 << 20


def contained(base: Path, relative: str) -> Path | None:
    """`base/relative` if it is a regular file inside `base` after resolving symlinks, else None.

    Refuses absolute paths, '..', '.', empty segments, backslashes and NUL bytes outright."""
    if not relative or relative.startswith("/") or "\\" in relative or "\x00" in relative:
        return None
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    real_base = base.resolve()
    candidate = (real_base / relative).resolve()
    if not candidate.is_relative_to(real_base) or not candidate.is_file():
        return None
    return candidate


def dataset_dir(root: Path, name: str) -> Path | None:
    """The folder of an exported dataset, if the name is plain and the folder is really inside DIR/exports."""
    try:
        check_name(name, "dataset")
    except ConfigError:
        return None
    exports = (root / EXPORTS_DIR).resolve()
    folder = (exports / name).resolve()
    if folder.parent != exports or not folder.is_dir():
        return None
    return folder


def dataset_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, resolved path) of every deliverable file: regular files inside the folder, sorted,
    skipping hidden names and symlinks that lead outside."""
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            relative = (Path(current) / name).relative_to(folder).as_posix()
            path = contained(folder, relative)
            if path is not None:
                yield relative, path


def _collect_ids(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_KEYS and isinstance(item, str):
                found.add(item)
            elif key in _ID_LIST_KEYS and isinstance(item, list):
                found.update(i for i in item if isinstance(i, str))
            else:
                _collect_ids(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_ids(item, found)


_ids_cache: dict[tuple[str, int, int], frozenset[str]] = {}
_ids_lock = threading.Lock()


def _ids_in_json(path: Path) -> set[str]:
    found: set[str] = set()
    text = path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines() if path.suffix == ".jsonl" else [text]:
        try:
            _collect_ids(json.loads(line), found)
        except ValueError:
            continue
    return found


def _ids_in_parquet(path: Path) -> set[str]:
    """The `excap/episode_id` column of a LeRobot episodes table (meta/episodes/**.parquet)."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return set()
    try:
        if PARQUET_ID_COLUMN not in pq.read_schema(path).names:
            return set()
        column = pq.read_table(path, columns=[PARQUET_ID_COLUMN]).column(0).to_pylist()
    except (OSError, ValueError):
        return set()
    return {value for value in column if isinstance(value, str)}


def _ids_in_hdf5(path: Path) -> set[str]:
    """The `excap_episode_id` attribute of every demo of a robomimic export (data/demo_N)."""
    import h5py

    found: set[str] = set()
    try:
        with h5py.File(path, "r") as handle:
            data = handle.get("data")
            if not isinstance(data, h5py.Group):
                return found
            for demo in data.values():
                value = demo.attrs.get(HDF5_ID_ATTRIBUTE) if isinstance(demo, h5py.Group) else None
                value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
                if isinstance(value, str):
                    found.add(value)
    except Exception:  # a damaged or foreign file delivers no episodes
        return set()
    return found


def _file_episode_ids(relative: str, path: Path) -> frozenset[str]:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _ids_lock:
        if key in _ids_cache:
            return _ids_cache[key]
    if path.suffix == ".parquet":
        found = _ids_in_parquet(path) if relative.startswith("meta/") else set()
    elif path.suffix in HDF5_SUFFIXES:
        found = _ids_in_hdf5(path)
    else:
        found = _ids_in_json(path) if st.st_size <= _MAX_JSON_BYTES else set()
    with _ids_lock:
        _ids_cache[key] = frozenset(found)
    return _ids_cache[key]


def export_episode_ids(folder: Path) -> set[str]:
    """Episode ids a dataset was exported from (the provenance its export writes): the `excap/episode_id`
    column of LeRobot's meta/**.parquet episode tables, the `excap_episode_id` attribute of the demos of a
    robomimic .hdf5/.h5 file, and every `episode_id` / `source_episode_id` /
    `excap_episode_id` value and `episode_ids` / `source_episode_ids` list in its JSON and JSON-lines files.
    Files are read again only when they change."""
    found: set[str] = set()
    for relative, path in dataset_files(folder):
        if path.suffix in (".json", ".jsonl", ".parquet", *HDF5_SUFFIXES):
            found |= _file_episode_ids(relative, path)
    return found
