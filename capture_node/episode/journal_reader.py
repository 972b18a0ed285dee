"""Reading a journal (`excap.episode.journal`) the way recovery needs it: a scan of every readable record that
resynchronises past damage (a record whose header or checksum is wrong is skipped up to the next offset where a
whole valid record starts), tells damage from a torn tail, and remembers where the batches are; then the batches
themselves, read again from the file one by one.

Both passes map the file and walk it front to back. Mapped pages count in the process's memory, so the pages behind
the reader are handed back as it goes (`MappedWindow`): recovering a journal of a 10-minute episode (about 2 GB)
keeps a window of it resident, not the whole file."""

import json
import mmap
import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.errors import JournalError
from excap.episode.journal import (
    BATCH_HEAD,
    FILE_MAGIC,
    HEADER,
    RECORD_KINDS,
    RECORD_MAGIC,
    RecordKind,
    batch_header,
    decode_batch,
    record_crc,
)
from excap.episode.streams import Batch, StreamSpec

#: Bytes a reader moves past before the pages behind it are handed back.
RELEASE_BYTES = 16 * 1024 * 1024

__all__ = ["Damage", "JournalScan", "read_batches", "read_journal", "scan_journal"]


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


class MappedWindow:
    """Keeps only the part of a mapped file near a forward-moving reader resident: once the reader is
    `RELEASE_BYTES` past what was handed back, the whole pages behind it are dropped from the mapping (read again
    from the page cache if touched again)."""

    def __init__(self, view: mmap.mmap) -> None:
        self.view = view
        self.released = 0

    def passed(self, position: int) -> None:
        end = position - position % mmap.PAGESIZE
        if end - self.released >= RELEASE_BYTES and hasattr(mmap, "MADV_DONTNEED"):
            self.view.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
            self.released = end


def _record_at(view: bytes | mmap.mmap, offset: int, size: int) -> tuple[int, int] | None:
    """(kind, payload length) if a whole, checksummed record starts at `offset`."""
    if offset + HEADER.size > size:
        return None
    magic, kind, reserved1, reserved2, length, crc = HEADER.unpack_from(view, offset)
    if magic != RECORD_MAGIC or kind not in RECORD_KINDS or reserved1 or reserved2:
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
    if magic == RECORD_MAGIC and kind in RECORD_KINDS and not reserved1 and not reserved2 \
            and HEADER.size + length > len(tail):
        return "record cut short"
    return None


def _use_record(scan: JournalScan, view: bytes | mmap.mmap, offset: int, kind: int, length: int) -> bool:
    """Take in a record's metadata, declaration or batch header; False if its payload is unusable."""
    start = offset + HEADER.size
    try:
        if kind == RecordKind.BATCH:
            index, rows = batch_header(view[start:start + min(length, BATCH_HEAD.size)])
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
    window = MappedWindow(view)
    while position < size:
        window.passed(position)
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
        window = MappedWindow(view)
        for offset in scan.batch_offsets:
            window.passed(offset)
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
