"""The journal's record boundaries as the tests know them from the documented layout, independent of the reader.

Layout (see capture_node/episode/journal.py): 8-byte file magic, then records of a 16-byte header
`magic "EXJR" | kind u8 | u8 | u16 | payload length u32 | crc32 u32` and the payload; a batch payload
starts with `stream number u16 | rows u32`; a stream declaration is JSON with its number under "index".
"""

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

FILE_MAGIC_SIZE = 8
_HEADER = struct.Struct("<4sBBHII")
_BATCH = struct.Struct("<HI")
METADATA, STREAM, BATCH, METADATA_UPDATE = 1, 2, 3, 4


@dataclass(frozen=True)
class Span:
    offset: int  # of the record header
    length: int  # header and payload
    kind: int
    stream: int = -1  # batches and declarations: the stream number
    rows: int = 0  # batches: rows

    @property
    def end(self) -> int:
        return self.offset + self.length

    def overlaps(self, start: int, stop: int) -> bool:
        return self.offset < stop and start < self.end


def record_spans(data: bytes) -> list[Span]:
    """Every record of an undamaged journal, in order."""
    spans = []
    position = FILE_MAGIC_SIZE
    while position + _HEADER.size <= len(data):
        magic, kind, _r1, _r2, length, _crc = _HEADER.unpack_from(data, position)
        assert magic == b"EXJR", f"not a record at {position}"
        payload = data[position + _HEADER.size:position + _HEADER.size + length]
        stream, rows = -1, 0
        if kind == BATCH:
            stream, rows = _BATCH.unpack_from(payload, 0)
        elif kind == STREAM:
            stream = json.loads(payload)["index"]
        spans.append(Span(position, _HEADER.size + length, kind, stream, rows))
        position += _HEADER.size + length
    assert position == len(data), "journal ends inside a record"
    return spans


def expected_rows(spans: list[Span], damaged: tuple[int, int] | None, cut_at: int | None = None) -> int:
    """Rows a reader must recover when bytes [start, stop) are damaged and/or the file is cut at `cut_at`:
    every batch that is whole and undamaged, of a stream with at least one whole, undamaged declaration."""
    def whole(span: Span) -> bool:
        if cut_at is not None and span.end > cut_at:
            return False
        return damaged is None or not span.overlaps(*damaged)

    declared = {s.stream for s in spans if s.kind == STREAM and whole(s)}
    return sum(s.rows for s in spans if s.kind == BATCH and whole(s) and s.stream in declared)


def crash_copy(recording_dir: Path, episode_id: str, target_out: Path) -> Path:
    """Copy a live recording's journal and partial file, as the OS holds them now, into `target_out`:
    the files a kill -9 at this moment would leave. Returns the copied journal."""
    target = target_out / ".recording"
    target.mkdir(parents=True, exist_ok=True)
    for suffix in (".journal", ".h5.partial"):
        source = recording_dir / f"{episode_id}{suffix}"
        if source.exists():
            shutil.copyfile(source, target / source.name)
    return target / f"{episode_id}.journal"
