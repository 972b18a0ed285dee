"""An episode read for conversion: stream by stream in blocks of rows (bounded memory), log times in UTC, and the
machine's joint angles over time from its decoded CAN signals.

Every sample keeps its own time: an episode's `t_ns` (host CLOCK_MONOTONIC) plus the root attribute
`clock_offset_ns` is its UTC time in nanoseconds, the log time of a converted message. Nothing is resampled; the
joint poses (derived, not recorded) are given at every time one of the joints' CAN messages was recorded, each
joint at its latest value by then.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from excap.core.errors import ExcapError
from excap.episode.reader import EpisodeReader, Stream
from excap.schemas.machine_kinds import MACHINE_KINDS, JointSignal

BLOCK_ROWS = 2048  # rows read at a time: a block of camera frames is about 100 MB at most (50 KB JPEGs)
CAMERA_BLOCK_ROWS = 64


@dataclass(frozen=True)
class Block:
    """Rows [begin, begin + len) of one stream: column name -> values, plus UTC log times."""

    begin: int
    columns: dict[str, Any]
    log_time_ns: np.ndarray

    def __len__(self) -> int:
        return len(self.log_time_ns)


def clock_offset_ns(reader: EpisodeReader) -> int:
    value = reader.metadata.get("clock_offset_ns", 0)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def blocks(stream: Stream, columns: Sequence[str], offset_ns: int, block_rows: int = BLOCK_ROWS) -> Iterator[Block]:
    """The rows of `stream` in blocks of at most `block_rows`: the given columns (JPEG frames as uint8 arrays,
    text as str) and log times t_ns + offset_ns."""
    count = len(stream)
    for begin in range(0, count, block_rows):
        end = min(begin + block_rows, count)
        values = {name: stream.block(name, begin, end) for name in columns}
        t_ns = values["t_ns"] if "t_ns" in values else stream.block("t_ns", begin, end)
        log_times = np.asarray(t_ns, dtype=np.int64) + offset_ns
        check_log_times(log_times, f"{stream.file}: /{stream.path}", begin)
        yield Block(begin, values, log_times)


MAX_LOG_TIME_NS = 2**63 - 1


def check_log_times(log_times: np.ndarray, where: str, first_row: int = 0) -> None:
    """ExcapError naming the first row whose UTC time (t_ns + clock_offset_ns) is before 1970: MCAP log times and
    message stamps are unsigned."""
    negative = np.flatnonzero(log_times < 0)
    if negative.size:
        row = first_row + int(negative[0])
        raise ExcapError(f"{where} row {row}: t_ns + clock_offset_ns = {int(log_times[negative[0]])} is before 1970, "
                         "not an MCAP log time")


JOINT_BLOCK = 65536  # joint poses computed at a time


@dataclass(frozen=True)
class _JointSource:
    stream: Stream
    column: str


@dataclass(frozen=True)
class JointTimeline:
    """The machine's joint angles (rad) at every time one of its joints' messages has a row: the times are kept,
    the angles are computed block by block (`blocks`), so an hour-long episode needs no hour of angles in memory."""

    names: tuple[str, ...]
    t_ns: np.ndarray  # episode clock, increasing, unique
    joints: tuple[JointSignal, ...] = ()
    sources: dict[str, _JointSource] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t_ns)

    def angles(self, begin: int, end: int) -> np.ndarray:
        """(end - begin, len(names)) angles of times [begin, end); NaN where a joint had no value yet."""
        at = self.t_ns[begin:end]
        degrees = {name: _latest(source.stream, source.column, at) for name, source in self.sources.items()}
        angles = np.empty((len(at), len(self.joints)))
        for i, joint in enumerate(self.joints):
            value = degrees[joint.signal]
            if joint.relative_to:
                value = (value - degrees[joint.relative_to] + 180.0) % 360.0 - 180.0
            angles[:, i] = np.radians(value)
        return angles

    def blocks(self, size: int = JOINT_BLOCK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(times, angles) in blocks of at most `size` times."""
        for begin in range(0, len(self.t_ns), size):
            end = min(begin + size, len(self.t_ns))
            yield self.t_ns[begin:end], self.angles(begin, end)


def _latest(stream: Stream, column: str, at_ns: np.ndarray) -> np.ndarray:
    """The latest value of `column` at or before each time (NaN before the stream's first row)."""
    index = stream.indices_at(at_ns)
    values = np.asarray(stream.column(column), dtype=np.float64)
    out = np.full(len(at_ns), np.nan)
    seen = index >= 0
    out[seen] = values[index[seen]]
    return out


def joint_timeline(reader: EpisodeReader) -> JointTimeline:
    """The joints of the episode's machine kind (excap.schemas.machine_kinds) decoded from its CAN signals; empty for
    a kind without joints or an episode without those signals."""
    empty = JointTimeline((), np.zeros(0, np.int64))
    kind = MACHINE_KINDS.get(str(reader.metadata.get("machine_kind", "")))
    if kind is None:
        return empty
    wanted = {name for joint in kind.joints for name in (joint.signal, joint.relative_to) if name}
    sources = {name: _JointSource(*reader.signal(name)) for name in sorted(wanted) if reader.has_signal(name)}
    joints = tuple(j for j in kind.joints if j.signal in sources and (not j.relative_to or j.relative_to in sources))
    if not joints:
        return empty
    streams = {source.stream.path: source.stream for source in sources.values()}
    t_ns = np.unique(np.concatenate([stream.t_ns for stream in streams.values()]))
    return JointTimeline(tuple(j.name for j in joints), t_ns, joints, sources)


__all__ = ["BLOCK_ROWS", "CAMERA_BLOCK_ROWS", "Block", "JointTimeline", "blocks", "check_log_times", "clock_offset_ns",
           "joint_timeline"]
