"""Append-only, checksummed journal of a recording in progress.

The journal is the crash-safe copy of an episode while it is recorded: every batch the writer
hands to HDF5 is first appended here, and the file is flushed to the OS at a fixed interval, so
`kill -9` loses at most that interval. `excap recover` rebuilds an episode from it.

Layout: the 8-byte file magic, then records of a 16-byte header and a payload:

    magic b"EXJR" | kind u8 | reserved u8 | reserved u16 | length u32 | crc32(kind + payload) u32

A record that is cut short or fails its checksum ends the journal: only the tail of an
append-only file can be torn.
"""

import fcntl
import json
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from capture_node.errors import JournalError
from capture_node.streams import Batch, StreamSpec, batch_length

FILE_MAGIC = b"EXCAPJ1\n"
RECORD_MAGIC = b"EXJR"
_HEADER = struct.Struct("<4sBBHII")
_BATCH_HEAD = struct.Struct("<HI")


class RecordKind(IntEnum):
    METADATA = 1  # JSON: episode attributes at start
    STREAM = 2  # JSON: a StreamSpec; streams are numbered in order of appearance
    BATCH = 3  # rows of one stream
    METADATA_UPDATE = 4  # JSON: attributes changed during recording (outcome, notes, ...)


def encode_batch(stream_index: int, spec: StreamSpec, batch: Batch) -> bytes:
    rows = batch_length(batch)
    parts = [_BATCH_HEAD.pack(stream_index, rows)]
    for column in spec.columns:
        values = batch[column.name]
        if column.is_vlen:
            blobs = [v.encode("utf-8") if column.dtype == "str" else bytes(v) for v in values]
            parts.append(np.fromiter((len(b) for b in blobs), dtype="<u4", count=rows).tobytes())
            parts.extend(blobs)
        else:
            array = np.ascontiguousarray(values, dtype=np.dtype(column.dtype).newbyteorder("<"))
            parts.append(array.tobytes())
    return b"".join(parts)


def decode_batch(payload: bytes, specs: list[StreamSpec]) -> tuple[int, Batch]:
    stream_index, rows = _BATCH_HEAD.unpack_from(payload, 0)
    if stream_index >= len(specs):
        raise JournalError(f"batch for unknown stream #{stream_index}")
    spec = specs[stream_index]
    offset = _BATCH_HEAD.size
    batch: Batch = {}
    for column in spec.columns:
        if column.is_vlen:
            lengths = np.frombuffer(payload, dtype="<u4", count=rows, offset=offset)
            offset += 4 * rows
            values: list[Any] = []
            for length in lengths.tolist():
                blob = payload[offset:offset + length]
                offset += length
                values.append(blob.decode("utf-8") if column.dtype == "str" else np.frombuffer(blob, np.uint8))
            batch[column.name] = values
        else:
            dtype = np.dtype(column.dtype).newbyteorder("<")
            count = rows * int(np.prod(column.shape, dtype=np.int64))
            array = np.frombuffer(payload, dtype=dtype, count=count, offset=offset)
            offset += array.nbytes
            batch[column.name] = array.reshape((rows, *column.shape)).astype(column.dtype)
    if offset != len(payload):
        raise JournalError(f"batch for stream {spec.path!r} has {len(payload) - offset} stray bytes")
    return stream_index, batch


class JournalWriter:
    """Appends records; holds an exclusive lock so recovery can tell a live journal from an orphan."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream_index: dict[str, int] = {}
        self._specs: dict[str, StreamSpec] = {}
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError as exc:
            raise JournalError(f"{path}: journal already exists") from exc
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=1 << 20)
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(FILE_MAGIC)
        self.bytes_written = len(FILE_MAGIC)

    def _append(self, kind: RecordKind, payload: bytes) -> None:
        crc = zlib.crc32(payload, zlib.crc32(bytes([kind])))
        self._file.write(_HEADER.pack(RECORD_MAGIC, kind, 0, 0, len(payload), crc))
        self._file.write(payload)
        self.bytes_written += _HEADER.size + len(payload)

    def write_metadata(self, attrs: dict[str, Any]) -> None:
        self._append(RecordKind.METADATA, json.dumps(attrs, sort_keys=True).encode())

    def update_metadata(self, attrs: dict[str, Any]) -> None:
        self._append(RecordKind.METADATA_UPDATE, json.dumps(attrs, sort_keys=True).encode())

    def add_stream(self, spec: StreamSpec) -> None:
        if spec.path in self._stream_index:
            return
        self._stream_index[spec.path] = len(self._stream_index)
        self._specs[spec.path] = spec
        self._append(RecordKind.STREAM, json.dumps(spec.to_json(), sort_keys=True).encode())

    def write_batch(self, spec: StreamSpec, batch: Batch) -> None:
        self.add_stream(spec)
        self._append(RecordKind.BATCH, encode_batch(self._stream_index[spec.path], spec, batch))

    def flush(self, durable: bool = True) -> None:
        """Hand everything to the OS (survives kill -9); with `durable`, also to the disk."""
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())

    def sync(self) -> None:
        """Make what was handed to the OS durable; safe to call from another thread than the writer."""
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()


@dataclass
class JournalContents:
    metadata: dict[str, Any] = field(default_factory=dict)
    streams: list[StreamSpec] = field(default_factory=list)
    records: int = 0
    valid_bytes: int = 0
    torn_tail: str = ""  # why reading stopped before the end of the file, if it did


def read_journal(path: Path) -> tuple[JournalContents, Iterator[tuple[StreamSpec, Batch]]]:
    """Read metadata and stream specs eagerly, then yield batches lazily.

    The returned contents object is completed as the iterator is consumed (metadata updates and
    streams declared later in the file, the torn-tail reason).
    """
    contents = JournalContents()
    handle = open(path, "rb")  # noqa: SIM115 - closed by the generator
    if handle.read(len(FILE_MAGIC)) != FILE_MAGIC:
        handle.close()
        raise JournalError(f"{path}: not an excap journal")
    contents.valid_bytes = len(FILE_MAGIC)

    def records() -> Iterator[tuple[int, bytes]]:
        while True:
            header = handle.read(_HEADER.size)
            if not header:
                return
            if len(header) < _HEADER.size:
                contents.torn_tail = "record header cut short"
                return
            magic, kind, _r1, _r2, length, crc = _HEADER.unpack(header)
            if magic != RECORD_MAGIC:
                contents.torn_tail = "bad record magic"
                return
            payload = handle.read(length)
            if len(payload) < length:
                contents.torn_tail = "record payload cut short"
                return
            if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
                contents.torn_tail = "record checksum mismatch"
                return
            contents.records += 1
            contents.valid_bytes += _HEADER.size + length
            yield kind, payload

    stream = records()
    pending: list[tuple[int, bytes]] = []
    for kind, payload in stream:
        if kind == RecordKind.METADATA:
            contents.metadata.update(json.loads(payload))
            continue
        pending.append((kind, payload))
        break

    def batches() -> Iterator[tuple[StreamSpec, Batch]]:
        try:
            for kind, payload in (*pending, *stream):
                if kind in (RecordKind.METADATA, RecordKind.METADATA_UPDATE):
                    contents.metadata.update(json.loads(payload))
                elif kind == RecordKind.STREAM:
                    contents.streams.append(StreamSpec.from_json(json.loads(payload)))
                elif kind == RecordKind.BATCH:
                    index, batch = decode_batch(payload, contents.streams)
                    yield contents.streams[index], batch
                else:
                    contents.torn_tail = f"unknown record kind {kind}"
                    return
        finally:
            handle.close()

    return contents, batches()


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
