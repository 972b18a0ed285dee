"""Writes an episode's streams into an HDF5 file, appending in batches.

Only plain HDF5 features are used (no filter plugins), so every episode opens with stock h5py.
The file is written under a temporary name and moved to its final name by the recorder.

Chunks are sized per dataset from the rows it is expected to hold (the stream's rate over a few
seconds while recording, the whole stream when rebuilding from a journal), between 4 KiB and
256 KiB: HDF5 writes every chunk in full, so a fixed large chunk would cost 256 KiB per dataset in
a short episode (a 1 s simulated episode was 32 MB, 28 MB of it empty chunk space).
"""

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.streams import Batch, Column, StreamSpec, batch_length

MAX_CHUNK_BYTES = 256 * 1024
MIN_CHUNK_BYTES = 4 * 1024
_CHUNK_CACHE_BYTES = 2 * MAX_CHUNK_BYTES  # per dataset: the chunk being filled, not a history
_VLEN_ROW_BYTES = 16  # a variable-length value's descriptor in its dataset (the data lives in the heap)


def h5_dtype(column: Column) -> Any:
    if column.dtype == "bytes":
        return h5py.vlen_dtype(np.uint8)
    if column.dtype == "str":
        return h5py.string_dtype("utf-8")
    return np.dtype(column.dtype)


def row_bytes(column: Column) -> int:
    if column.is_vlen:
        return _VLEN_ROW_BYTES
    return max(1, np.dtype(column.dtype).itemsize * int(np.prod(column.shape, dtype=np.int64)))


def chunk_rows(column: Column, expected_rows: float = 0.0) -> int:
    """Rows per chunk: a power of two holding about `expected_rows`, within the chunk byte bounds."""
    size = row_bytes(column)
    target = min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, expected_rows * size))
    rows = max(1, int(target // size))
    return 1 << (rows.bit_length() - 1)


def attr_value(value: Any) -> Any:
    """HDF5-storable form of a metadata value: dicts become JSON text, None is not stored."""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def write_attrs(node: h5py.HLObject, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        if value is None:
            if key in node.attrs:
                del node.attrs[key]
            continue
        node.attrs[key] = attr_value(value)


class EpisodeFileWriter:
    """Context manager that appends stream batches to one HDF5 file."""

    def __init__(self, path: Path, root_attrs: dict[str, Any]) -> None:
        self.path = path
        try:
            self._file = h5py.File(path, "w-", libver=("v110", "latest"), rdcc_nbytes=_CHUNK_CACHE_BYTES)
        except (FileExistsError, OSError) as exc:
            raise EpisodeError(f"{path}: cannot create episode file ({exc})") from exc
        write_attrs(self._file, root_attrs)
        self._streams: dict[str, StreamSpec] = {}
        self.rows: dict[str, int] = {}

    def __enter__(self) -> "EpisodeFileWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def ensure_stream(self, spec: StreamSpec, expected_rows: float = 0.0) -> None:
        """Create the stream's datasets (once), chunked for about `expected_rows` rows."""
        if spec.path in self._streams:
            return
        group = self._file.require_group(spec.path)
        write_attrs(group, spec.attrs)
        for column in spec.columns:
            dataset = group.create_dataset(
                column.name,
                shape=(0, *column.shape),
                maxshape=(None, *column.shape),
                dtype=h5_dtype(column),
                chunks=(chunk_rows(column, expected_rows), *column.shape),
            )
            write_attrs(dataset, column.attrs)
        self._streams[spec.path] = spec
        self.rows[spec.path] = 0

    def append(self, spec: StreamSpec, batch: Batch, expected_rows: float = 0.0) -> None:
        count = batch_length(batch)
        self.ensure_stream(spec, max(expected_rows, count))
        if count == 0:
            return
        group = self._file[spec.path]
        start = self.rows[spec.path]
        for column in spec.columns:
            dataset = group[column.name]
            dataset.resize(start + count, axis=0)
            values = batch[column.name]
            if column.dtype == "bytes":
                array = np.empty(count, dtype=object)
                for i, blob in enumerate(values):
                    array[i] = np.frombuffer(blob, dtype=np.uint8) if isinstance(blob, bytes | bytearray) else blob
                # write_direct: plain slicing would turn equal-length frames into a 2-D array.
                dataset.write_direct(array, dest_sel=np.s_[start:start + count])
            elif column.dtype == "str":
                dataset[start:start + count] = np.array(values, dtype=object)
            else:
                dataset[start:start + count] = values
        self.rows[spec.path] = start + count

    def set_attrs(self, attrs: dict[str, Any], path: str = "/") -> None:
        write_attrs(self._file[path], attrs)

    def flush(self, durable: bool = False) -> None:
        """Write HDF5's caches to the file; with `durable`, also to the disk.

        Syncing as the recording goes keeps the final sync at stop small, whatever the length.
        """
        self._file.flush()
        if durable:
            os.fsync(self._file.id.get_vfd_handle())

    def close(self) -> None:
        """Flush and close; the file is closed even if the flush fails (the error is raised)."""
        if not self._file.id.valid:
            return
        try:
            self._file.flush()
        finally:
            self._file.close()
