"""What an excap MCAP file says about its episode: MCAP metadata records, shared by both profiles' writers and the
reader of ROS 2 bags.

- `excap.episode`: the episode's root attributes (episode_id, machine_kind, clock_offset_ns, ...), each value as JSON;
- `excap.streams`: per stream path, its group attributes and column names as JSON (axis, button and command names,
  camera size and rate, CAN interface and DBC), so that a converted file turns back into the same episode.
"""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.errors import ExcapError
from excap.episode.reader import EpisodeReader

EPISODE_RECORD = "excap.episode"
STREAMS_RECORD = "excap.streams"
# Events shown as warnings / errors (Foxglove log levels, diagnostic levels)
WARNING_EVENTS = frozenset({"drop", "fault", "disk_full", "can_error_frame", "dm1", "start_override", "recovered"})
ERROR_EVENTS = frozenset({"fault"})


@dataclass
class ConvertReport:
    """Messages written per topic, and the episode's duration (for the real-time factor)."""

    path: Path
    messages: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0

    def count(self, topic: str, n: int) -> None:
        self.messages[topic] = self.messages.get(topic, 0) + n

    def summary(self) -> str:
        return f"{sum(self.messages.values())} messages on {len(self.messages)} topics"


def episode_record(reader: EpisodeReader) -> dict[str, str]:
    return {key: json.dumps(value, sort_keys=True) for key, value in reader.metadata.items()}


def streams_record(reader: EpisodeReader) -> dict[str, str]:
    """Stream path -> JSON {"attrs": group attributes, "names": {column: names}} of every data stream."""
    record: dict[str, str] = {}
    for info in reader.streams:
        if info.kind in ("events", "other"):
            continue
        stream = reader.stream(info.path)
        names = {column: stream.names(column) for column in ("axes", "buttons", "commands")
                 if column in info.columns}
        units = {column: stream.unit(column) for column in info.columns
                 if info.kind == "can_decoded" and column not in ("t_ns", "source_address")}
        record[info.path] = json.dumps({"attrs": stream.attrs, "names": names, "units": units}, sort_keys=True)
    return record


def parse_record(record: dict[str, str]) -> dict[str, Any]:
    """A record written by `episode_record` / `streams_record` back as values (a value that is not JSON is kept as
    text)."""
    parsed: dict[str, Any] = {}
    for key, text in record.items():
        try:
            parsed[key] = json.loads(text)
        except ValueError:
            parsed[key] = text
    return parsed


@contextmanager
def writing(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` to write to; moved to `out` when the block ends without an error, removed
    otherwise. An existing `out` is never overwritten."""
    if out.exists():
        raise ExcapError(f"{out}: already exists, not overwriting")
    if not out.parent.is_dir():
        raise ExcapError(f"{out}: no such folder {out.parent}")
    partial = out.parent / f".{out.name}.partial"
    partial.unlink(missing_ok=True)
    try:
        yield partial
        if out.exists():
            raise ExcapError(f"{out}: already exists, not overwriting")
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


__all__ = ["EPISODE_RECORD", "ERROR_EVENTS", "STREAMS_RECORD", "WARNING_EVENTS", "ConvertReport",
           "episode_record", "parse_record", "streams_record", "write_options", "writing"]


CHUNK_BYTES = 4 * 1024 * 1024
ZSTD_LEVEL = 1  # most bytes are JPEG frames, which zstd cannot shrink: the fastest level costs the least


def write_options(profile: str) -> Any:
    """The Foxglove SDK's MCAP writer options of an excap file: zstd chunks, message indexes, chunk indexes,
    statistics and summary offsets (the SDK's defaults), the given header profile ("ros2" for a ROS 2 bag)."""
    import foxglove.mcap

    return foxglove.mcap.MCAPWriteOptions(compression=foxglove.mcap.MCAPCompression.Zstd, profile=profile,
                                          chunk_size=CHUNK_BYTES, compression_level=ZSTD_LEVEL)
