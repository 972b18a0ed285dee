"""All chosen streams of an episode as one sequence of samples in t_ns order.

Each stream is read in blocks of rows (a few hundred at a time, 16 camera frames, never whole columns), and the
streams are merged with a heap keyed on (t_ns, stream order, row), so memory does not grow with
the episode's length. A window [start_ns, end_ns] is found by binary search on the t_ns datasets.
Events may carry a t_ns slightly earlier than the previous event's; they are merged as they come.
"""

from __future__ import annotations

import fnmatch
import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader, Stream, StreamInfo

BLOCK_ROWS = 256
#: Rows per read of a stream with byte cells (JPEG frames): a read holds the interpreter for its whole length
#: (h5py), so 256 frames of 640x480 (about 10 MB, 15-50 ms) would hold back every sample due meanwhile.
BYTES_BLOCK_ROWS = 16


@dataclass(frozen=True)
class Sample:
    """One row of one stream: `row` maps column names to values (vectors as numpy, JPEG as bytes)."""

    t_ns: int
    path: str
    kind: str
    index: int
    row: dict[str, Any]


def _plain_cell(kind: str, value: Any) -> Any:
    if kind == "bytes":
        return np.asarray(value, dtype=np.uint8).tobytes()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def plain_cells(kind: str, values: np.ndarray) -> list[Any]:
    """A block of one column as plain cells: numbers as Python numbers, text as str, JPEG frames as bytes,
    vectors (axes, commands) as numpy rows; converted once per block, not once per cell."""
    if kind == "value" and values.ndim == 1:
        return values.tolist()
    if kind == "value":
        return list(values)
    return [_plain_cell(kind, value) for value in values]


def first_index_at_or_after(stream: Stream, t: int) -> int:
    """Binary search on a stream's t_ns in the file, reading O(log N) single values."""
    low, high = 0, len(stream)
    while low < high:
        middle = (low + high) // 2
        if int(stream.block("t_ns", middle, middle + 1)[0]) < t:
            low = middle + 1
        else:
            high = middle
    return low


class StreamRows:
    """The rows of one stream between two times, read block by block.

    A data stream whose t_ns goes backwards raises EpisodeError when the replay reaches that row."""

    def __init__(self, stream: Stream, start_ns: int | None = None, end_ns: int | None = None,
                 block_rows: int = BLOCK_ROWS) -> None:
        self.stream = stream
        self.info: StreamInfo = stream.info
        self.kinds = {name: stream.cell_kind(name) for name in self.info.columns}
        has_bytes = "bytes" in self.kinds.values()
        self.block_rows = min(block_rows, BYTES_BLOCK_ROWS) if has_bytes else block_rows
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.ordered = self.info.kind != "events"
        self.first = 0 if start_ns is None or not self.ordered else first_index_at_or_after(stream, start_ns)
        self.stop = len(stream) if end_ns is None or not self.ordered else first_index_at_or_after(stream, end_ns + 1)

    def __iter__(self) -> Iterator[Sample]:
        columns = self.info.columns
        kinds = self.kinds
        previous: int | None = None
        for begin in range(self.first, self.stop, self.block_rows):
            end = min(begin + self.block_rows, self.stop)
            block = [plain_cells(kinds[name], self.stream.block(name, begin, end)) for name in columns]
            rows = [dict(zip(columns, cells, strict=True)) for cells in zip(*block, strict=True)]
            for offset, row in enumerate(rows):
                t = row["t_ns"]
                if self.ordered and previous is not None and t < previous:
                    raise EpisodeError(f"{self.stream.file}: /{self.info.path}/t_ns goes backwards at row "
                                       f"{begin + offset}")
                previous = t
                if self.start_ns is not None and t < self.start_ns:
                    continue
                if self.end_ns is not None and t > self.end_ns:
                    continue
                yield Sample(int(t), self.info.path, self.info.kind, begin + offset, row)


def select_paths(infos: Sequence[StreamInfo], patterns: Sequence[str] | None = None,
                 kinds: Sequence[str] | None = None) -> list[str]:
    """Stream paths matching any of the glob `patterns` (all if None) and of one of `kinds` (all if None)."""
    chosen = []
    for info in infos:
        if kinds is not None and info.kind not in kinds:
            continue
        if patterns and not any(fnmatch.fnmatchcase(info.path, p.strip("/")) for p in patterns):
            continue
        chosen.append(info.path)
    return chosen


class Timeline:
    """Samples of the chosen streams of an open episode, merged by t_ns; iterate as often as wanted."""

    def __init__(self, reader: EpisodeReader, paths: Sequence[str], start_ns: int | None = None,
                 end_ns: int | None = None, block_rows: int = BLOCK_ROWS) -> None:
        self.reader = reader
        self.paths = list(paths)
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.block_rows = block_rows

    def rows(self) -> list[StreamRows]:
        return [StreamRows(self.reader.stream(p), self.start_ns, self.end_ns, self.block_rows) for p in self.paths]

    def __len__(self) -> int:
        total = 0
        for rows in self.rows():
            if rows.info.kind == "events":
                total += sum(1 for _ in rows)
            else:
                total += rows.stop - rows.first
        return total

    def __iter__(self) -> Iterator[Sample]:
        iterators = [iter(rows) for rows in self.rows()]
        heap: list[tuple[int, int, int, Sample]] = []
        for order, iterator in enumerate(iterators):
            sample = next(iterator, None)
            if sample is not None:
                heap.append((sample.t_ns, order, sample.index, sample))
        heapq.heapify(heap)
        while heap:
            _, order, _, sample = heap[0]
            following = next(iterators[order], None)
            if following is None:
                heapq.heappop(heap)
            else:
                heapq.heapreplace(heap, (following.t_ns, order, following.index, following))
            yield sample

    def first_t_ns(self) -> int | None:
        return next((s.t_ns for s in self), None)
