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
"""

import fcntl
import json
import mmap
import os
import struct
import time
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from excap.core.errors import JournalError
from excap.episode.streams import Batch, StreamSpec, batch_length

FILE_MAGIC = b"EXCAPJ1\n"
RECORD_MAGIC = b"EXJR"
HEADER = struct.Struct("<4sBBHII")
_BATCH_HEAD = struct.Struct("<HI")
#: Seconds between checkpoints (metadata and stream declarations written again).
CHECKPOINT_INTERVAL_S = 5.0


class RecordKind(IntEnum):
    METADATA = 1  # JSON: every episode attribute (at start and at each checkpoint)
    STREAM = 2  # JSON: a StreamSpec with its stream number under "index"
    BATCH = 3  # rows of one stream
    METADATA_UPDATE = 4  # JSON: attributes changed during recording (outcome, notes, ...)


_KINDS = frozenset(int(k) for k in RecordKind)


def record_crc(kind: int, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(bytes([kind])))


def encode_record(kind: RecordKind, payload: bytes) -> bytes:
    return HEADER.pack(RECORD_MAGIC, kind, 0, 0, len(payload), record_crc(kind, payload)) + payload


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
            array_ = np.ascontiguousarray(values, dtype=np.dtype(column.dtype).newbyteorder("<"))
            parts.append(array_.tobytes())
    return b"".join(parts)


def batch_header(payload: bytes | memoryview) -> tuple[int, int]:
    """(stream number, rows) of a batch payload."""
    if len(payload) < _BATCH_HEAD.size:
        raise JournalError("batch record shorter than its header")
    stream_index, rows = _BATCH_HEAD.unpack_from(payload, 0)
    return int(stream_index), int(rows)


def decode_batch(payload: bytes | memoryview, specs: dict[int, StreamSpec]) -> tuple[int, Batch]:
    """Decode one batch; JournalError if it does not fit its stream's layout."""
    stream_index, rows = batch_header(payload)
    spec = specs.get(stream_index)
    if spec is None:
        raise JournalError(f"batch for undeclared stream #{stream_index}")
    data = bytes(payload)
    offset = _BATCH_HEAD.size
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
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()  # closes the descriptor even when its own flush fails again


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Damage:
    """A byte range of the journal that is not part of any readable record."""

    offset: int
    length: int
    reason: str


@dataclass
class JournalScan:
    """Every readable record of a journal file, and what had to be skipped."""

    path: Path
    size: int = 0
    has_magic: bool = False
    records: int = 0  # readable records (valid header and checksum, usable payload)
    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_records: int = 0
    streams: dict[int, StreamSpec] = field(default_factory=dict)
    batch_offsets: "array[int]" = field(default_factory=lambda: array("q"))
    rows: dict[int, int] = field(default_factory=dict)  # stream number -> rows in readable batches
    damaged: list[Damage] = field(default_factory=list)  # skipped ranges, not counting a torn tail
    torn_tail: Damage | None = None
    unusable_records: int = 0  # whole records whose payload could not be used (bad JSON, layout)

    @property
    def skipped_bytes(self) -> int:
        return sum(d.length for d in self.damaged)

    @property
    def intact(self) -> bool:
        """Every byte is a usable record, except possibly a torn tail (the write a crash interrupted)."""
        return self.has_magic and not self.damaged and not self.unusable_records

    @property
    def empty(self) -> bool:
        """Nothing usable at all: an empty, headerless or foreign file."""
        return self.records == 0

    def summary(self) -> str:
        parts = []
        if self.damaged or self.unusable_records:
            parts.append(f"skipped {len(self.damaged)} damaged range(s) of {self.skipped_bytes} bytes"
                         + (f" and {self.unusable_records} unusable record(s)" if self.unusable_records else ""))
        if self.torn_tail is not None:
            parts.append(f"last {self.torn_tail.length} bytes cut short ({self.torn_tail.reason})")
        return "; ".join(parts)


def _record_at(view: bytes | mmap.mmap, offset: int, size: int) -> tuple[int, int] | None:
    """(kind, payload length) if a whole, checksummed record starts at `offset`."""
    if offset + HEADER.size > size:
        return None
    magic, kind, reserved1, reserved2, length, crc = HEADER.unpack_from(view, offset)
    if magic != RECORD_MAGIC or kind not in _KINDS or reserved1 or reserved2:
        return None
    end = offset + HEADER.size + length
    if end > size:
        return None
    with memoryview(view)[offset + HEADER.size:end] as payload:
        if record_crc(kind, payload) != crc:
            return None
    return kind, length


def _next_record(view: bytes | mmap.mmap, start: int, size: int) -> int | None:
    """Offset of the next whole, checksummed record at or after `start`."""
    position = start
    while True:
        found = view.find(RECORD_MAGIC, position)
        if found < 0:
            return None
        if _record_at(view, found, size) is not None:
            return found
        position = found + 1


def _tail_reason(view: bytes | mmap.mmap, offset: int, size: int) -> str | None:
    """Why the bytes from `offset` to the end are a torn tail, or None if they are damage."""
    tail = view[offset:size]
    if not tail.strip(b"\0"):
        return "zero-filled tail"
    if len(tail) < HEADER.size:
        return "record header cut short" if RECORD_MAGIC.startswith(tail[:4]) else None
    magic, kind, reserved1, reserved2, length, _crc = HEADER.unpack_from(tail, 0)
    if magic == RECORD_MAGIC and kind in _KINDS and not reserved1 and not reserved2 \
            and HEADER.size + length > len(tail):
        return "record cut short"
    return None


def _use_record(scan: JournalScan, view: bytes | mmap.mmap, offset: int, kind: int, length: int) -> bool:
    """Take in a record's metadata, declaration or batch header; False if its payload is unusable."""
    start = offset + HEADER.size
    try:
        if kind == RecordKind.BATCH:
            index, rows = batch_header(view[start:start + min(length, _BATCH_HEAD.size)])
            scan.batch_offsets.append(offset)
            scan.rows[index] = scan.rows.get(index, 0) + rows
            return True
        data = json.loads(view[start:start + length])
        if not isinstance(data, dict):
            return False
        if kind in (RecordKind.METADATA, RecordKind.METADATA_UPDATE):
            scan.metadata.update(data)
            scan.metadata_records += kind == RecordKind.METADATA
            return True
        spec = StreamSpec.from_json(data)
        index = int(data.get("index", len(scan.streams)))
        known = scan.streams.setdefault(index, spec)
        return known == spec
    except (JournalError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return False


def scan_journal(path: Path) -> JournalScan:
    """Find every readable record of a journal (JournalError only if the file cannot be opened)."""
    scan = JournalScan(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            scan.size = size
            if size == 0:
                return scan
            with mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_READ) as view:
                _scan_view(scan, view, size)
    except OSError as exc:
        raise JournalError(f"{path}: cannot read journal ({exc.strerror or exc})") from exc
    return scan


def _scan_view(scan: JournalScan, view: mmap.mmap, size: int) -> None:
    scan.has_magic = view[:len(FILE_MAGIC)] == FILE_MAGIC
    position = len(FILE_MAGIC) if scan.has_magic else 0
    if not scan.has_magic and size < len(FILE_MAGIC) and FILE_MAGIC.startswith(view[:size]):
        scan.torn_tail = Damage(0, size, "file header cut short")
        return
    while position < size:
        found = _record_at(view, position, size)
        if found is not None:
            kind, length = found
            if _use_record(scan, view, position, kind, length):
                scan.records += 1
            else:
                scan.unusable_records += 1
            position += HEADER.size + length
            continue
        following = _next_record(view, position + 1, size)
        if following is None:
            reason = _tail_reason(view, position, size)
            if reason is not None and scan.has_magic:
                scan.torn_tail = Damage(position, size - position, reason)
            else:
                scan.damaged.append(Damage(position, size - position, "unreadable bytes up to the end"))
            return
        scan.damaged.append(Damage(position, following - position, "bad record header or checksum"))
        position = following


def read_batches(scan: JournalScan) -> Iterator[tuple[StreamSpec, Batch]]:
    """Every decodable batch of a scanned journal, in file order (undecodable ones are counted in the scan)."""
    if not scan.batch_offsets:
        return
    with open(scan.path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
        for offset in scan.batch_offsets:
            length = HEADER.unpack_from(view, offset)[4]
            start = offset + HEADER.size
            payload = view[start:start + length]
            try:
                index, batch = decode_batch(payload, scan.streams)
            except (JournalError, ValueError):
                index, rows = batch_header(payload)
                scan.unusable_records += 1
                scan.records -= 1
                scan.rows[index] -= rows
                continue
            yield scan.streams[index], batch


def read_journal(path: Path) -> tuple[JournalScan, Iterator[tuple[StreamSpec, Batch]]]:
    """Scan a journal and return the scan with an iterator over its batches."""
    scan = scan_journal(path)
    return scan, read_batches(scan)


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
