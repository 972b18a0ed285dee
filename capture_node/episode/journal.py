"""Append-only, checksummed journal of a recording in progress.

The journal is the crash-safe copy of an episode while it is recorded: every batch the writer
hands to HDF5 is first appended here, and the file is handed to the OS at a fixed interval, so
`kill -9` loses at most that interval. `excap recover` rebuilds an episode from it.

Layout: the 8-byte file magic, then records of a 16-byte header and a payload:

    magic b"EXJR" | kind u8 | reserved u8 | reserved u16 | length u32 | crc32(kind + payload) u32

Reading resynchronises past damage: a record whose header or checksum is wrong is skipped up to the
next offset where a whole record with a valid header and checksum starts, so one bad byte costs one
record, not the rest of the file. Records that make the rest readable are repeated at checkpoints:
the episode metadata (with every update so far) and every stream declaration, each declaration
carrying its stream number, so a damaged declaration or metadata record is made good by a later copy.
Only the end of the file can be cut short by a crash: a final record that runs past the end of the
file (or a zero-filled tail, as a power loss leaves it) is a torn tail, not damage.

This module holds the layout (records, batch payloads) and the writer; reading, with resynchronisation past
damage, is `excap.episode.journal_reader`.
"""

import contextlib
import fcntl
import json
import os
import struct
import time
import zlib
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from excap.core.errors import JournalError
from excap.episode.streams import Batch, StreamSpec, batch_length

FILE_MAGIC = b"EXCAPJ1\n"
RECORD_MAGIC = b"EXJR"
HEADER = struct.Struct("<4sBBHII")
BATCH_HEAD = struct.Struct("<HI")
#: Seconds between checkpoints (metadata and stream declarations written again).
CHECKPOINT_INTERVAL_S = 5.0


class RecordKind(IntEnum):
    METADATA = 1  # JSON: every episode attribute (at start and at each checkpoint)
    STREAM = 2  # JSON: a StreamSpec with its stream number under "index"
    BATCH = 3  # rows of one stream
    METADATA_UPDATE = 4  # JSON: attributes changed during recording (outcome, notes, ...)


RECORD_KINDS = frozenset(int(k) for k in RecordKind)


def record_crc(kind: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(bytes([kind])))


def encode_record(kind: RecordKind, payload: bytes) -> bytes:
    return HEADER.pack(RECORD_MAGIC, kind, 0, 0, len(payload), record_crc(kind, payload)) + payload


def encode_batch(stream_index: int, spec: StreamSpec, batch: Batch) -> bytes:
    rows = batch_length(batch)
    parts = [BATCH_HEAD.pack(stream_index, rows)]
    for column in spec.columns:
        values = batch[column.name]
        if column.is_vlen:
            blobs = [v.encode("utf-8") if column.dtype == "str" else bytes(v) for v in values]
            parts.append(np.fromiter((len(b) for b in blobs), dtype="<u4", count=rows).tobytes())
            parts.extend(blobs)
        else:
            array_ = np.ascontiguousarray(values, dtype=np.dtype(column.dtype).newbyteorder("<"))
            parts.append(array_.tobytes())
    return b"".join(parts)


def batch_header(payload: bytes | memoryview) -> tuple[int, int]:
    """(stream number, rows) of a batch payload."""
    if len(payload) < BATCH_HEAD.size:
        raise JournalError("batch record shorter than its header")
    stream_index, rows = BATCH_HEAD.unpack_from(payload, 0)
    return int(stream_index), int(rows)


def decode_batch(payload: bytes | memoryview, specs: dict[int, StreamSpec]) -> tuple[int, Batch]:
    """Decode one batch; JournalError if it does not fit its stream's layout."""
    stream_index, rows = batch_header(payload)
    spec = specs.get(stream_index)
    if spec is None:
        raise JournalError(f"batch for undeclared stream #{stream_index}")
    data = bytes(payload)
    offset = BATCH_HEAD.size
    batch: Batch = {}
    for column in spec.columns:
        if column.is_vlen:
            if offset + 4 * rows > len(data):
                raise JournalError(f"batch for stream {spec.path!r} is shorter than its {rows} rows")
            lengths = np.frombuffer(data, dtype="<u4", count=rows, offset=offset)
            offset += 4 * rows
            values: list[Any] = []
            for length in lengths.tolist():
                if offset + length > len(data):
                    raise JournalError(f"batch for stream {spec.path!r} is shorter than its values")
                blob = data[offset:offset + length]
                offset += length
                if column.dtype == "str":
                    try:
                        values.append(blob.decode("utf-8"))
                    except UnicodeDecodeError as exc:
                        raise JournalError(f"batch for stream {spec.path!r}: text is not UTF-8") from exc
                else:
                    values.append(np.frombuffer(blob, np.uint8))
            batch[column.name] = values
        else:
            dtype = np.dtype(column.dtype).newbyteorder("<")
            count = rows * int(np.prod(column.shape, dtype=np.int64))
            if offset + count * dtype.itemsize > len(data):
                raise JournalError(f"batch for stream {spec.path!r} is shorter than its {rows} rows")
            array_ = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += array_.nbytes
            batch[column.name] = array_.reshape((rows, *column.shape)).astype(column.dtype)
    if offset != len(data):
        raise JournalError(f"batch for stream {spec.path!r} has {len(data) - offset} stray bytes")
    return stream_index, batch


class JournalWriter:
    """Appends records; holds an exclusive lock so recovery can tell a live journal from an orphan."""

    def __init__(self, path: Path, checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path = path
        self.metadata: dict[str, Any] = {}
        self._stream_index: dict[str, int] = {}
        self._specs: dict[str, StreamSpec] = {}
        self._checkpoint_interval_s = checkpoint_interval_s
        self._next_checkpoint = 0.0  # the first call to checkpoint_if_due writes one
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError as exc:
            raise JournalError(f"{path}: journal already exists") from exc
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        self._removed = False
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(FILE_MAGIC)

    def _append(self, kind: RecordKind, payload: bytes) -> None:
        self._file.write(encode_record(kind, payload))

    def write_metadata(self, attrs: dict[str, Any]) -> None:
        self.metadata = dict(attrs)
        self._append(RecordKind.METADATA, json.dumps(self.metadata, sort_keys=True).encode())

    def update_metadata(self, attrs: dict[str, Any]) -> None:
        self.metadata.update(attrs)
        self._append(RecordKind.METADATA_UPDATE, json.dumps(attrs, sort_keys=True).encode())

    def add_stream(self, spec: StreamSpec) -> None:
        """Declare a stream (once; again at every checkpoint)."""
        if spec.path in self._stream_index:
            return
        self._stream_index[spec.path] = len(self._stream_index)
        self._specs[spec.path] = spec
        self._declare(spec)

    def _declare(self, spec: StreamSpec) -> None:
        payload = spec.to_json() | {"index": self._stream_index[spec.path]}
        self._append(RecordKind.STREAM, json.dumps(payload, sort_keys=True).encode())

    def write_batch(self, spec: StreamSpec, batch: Batch) -> None:
        self.add_stream(spec)
        self._append(RecordKind.BATCH, encode_batch(self._stream_index[spec.path], spec, batch))

    def checkpoint(self) -> None:
        """Repeat the metadata (with every update so far) and every stream declaration."""
        self._append(RecordKind.METADATA, json.dumps(self.metadata, sort_keys=True).encode())
        for spec in self._specs.values():
            self._declare(spec)

    def checkpoint_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._next_checkpoint:
            self.checkpoint()
            self._next_checkpoint = now + self._checkpoint_interval_s

    def remove(self) -> None:
        """Delete the journal once its rows are safe elsewhere (the episode is published), keeping it open.

        Only the name goes: closing the last descriptor of a deleted file frees its disk space, which takes about a
        quarter of a second per GB (a 10-minute episode's journal holds ~5 GB), so that is left to `release()`,
        which the caller may run on another thread. The lock stays until then.
        """
        self.path.unlink()
        self._removed = True

    def release(self) -> None:
        """Close a removed journal (its contents no longer matter); the kernel frees its disk space now. Safe from
        another thread than the writer's once the writer is done."""
        with contextlib.suppress(OSError, ValueError):
            self._file.close()

    def flush(self, durable: bool = True) -> None:
        """Hand everything to the OS (survives kill -9); with `durable`, also to the disk."""
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        """Make what was handed to the OS durable; safe to call from another thread than the writer."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close; the file is closed (and its lock released) even if the flush fails."""
        if self._file.closed or self._removed:
            return
        try:
            self.flush()
        finally:
            self._file.close()  # closes the descriptor even when its own flush fails again


def journal_is_live(path: Path) -> bool:
    """True while a recorder process holds the journal's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
