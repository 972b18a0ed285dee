"""An episode's raw CAN frames written back to a log: every format python-can writes, chosen by the file suffix."""

from pathlib import Path

import can

from excap.convert.can_log_reading import one_line
from excap.convert.can_logs import ns_to_seconds
from excap.core.errors import EpisodeError, ExcapError
from excap.episode.can_frames import invalid_rows
from excap.episode.reader import EpisodeReader, Stream
from excap.episode.streams import CAN_CLASSIC_BYTES


def export_can_log(episode: Path, out: Path, channel: str | None = None) -> int:
    """Write the raw CAN frames of an episode (one channel, or all) to a log; return the frame count.

    The format follows the suffix of `out` (.log, .asc, .blf, .csv, .trc, .mf4, ...). Timestamps are
    t_device_ns where set, else t_ns converted to UTC. An episode holding invalid frames (ids or DLCs out of
    range) is refused: `excap validate` lists them.
    """
    if out.exists():
        raise ExcapError(f"{out}: already exists, not overwriting")
    with EpisodeReader(episode) as reader:
        paths = reader.paths("can")
        if channel is not None:
            if f"can/{channel}" not in paths:
                known = ", ".join(p.split("/")[1] for p in paths) or "none"
                raise ExcapError(f"{episode}: no CAN channel {channel!r} (has: {known})")
            paths = [f"can/{channel}"]
        if not paths:
            raise ExcapError(f"{episode}: no CAN frames to export")
        offset = int(reader.metadata.get("clock_offset_ns", 0))
        frames = [_read_frames(reader.stream(path), path.split("/")[1], offset) for path in paths]
    messages = sorted((m for channel_messages in frames for m in channel_messages), key=lambda m: m[0])
    try:
        writer = can.Logger(out)
    except Exception as exc:  # unknown suffix, missing optional package
        raise ExcapError(f"{out}: cannot write CAN log ({one_line(exc)})") from exc
    try:
        with writer:
            if messages and isinstance(writer, can.ASCWriter):
                # The ASC header holds the start time to the millisecond, and python-can writes the
                # milliseconds without leading zeros: start on a whole second, so that every frame
                # keeps its full microsecond timestamp.
                start_s = messages[0][0] // 1_000_000_000 * 1_000_000_000
                writer.log_event(f"excap export of {episode.name}", ns_to_seconds(start_s))
            for _, msg in messages:
                writer.on_message_received(msg)
    except BaseException as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, Exception):  # a writer refusing a timestamp or frame it cannot represent
            raise ExcapError(f"{out}: cannot write CAN log ({one_line(exc)})") from exc
        raise
    return len(messages)


MAX_STAMP_NS = 4_102_444_800 * 1_000_000_000  # 2100-01-01: python-can's writers format dates


def _read_frames(stream: Stream, name: str, offset_ns: int) -> list[tuple[int, can.Message]]:
    fd = stream.fd
    ids, extended, dlc = stream.column("id"), stream.column("extended"), stream.column("dlc")
    bad = invalid_rows(ids, extended, dlc, fd)
    if bad.size:
        raise EpisodeError(f"{stream.file}: /{stream.path} holds {bad.size} invalid CAN frames (first at row "
                           f"{int(bad[0])}: id {int(ids[bad[0]]):#x}, DLC {int(dlc[bad[0]])}); excap validate lists "
                           "them")
    t_ns, t_device = stream.t_ns.tolist(), stream.column("t_device_ns").tolist()
    stamps = [device if device != 0 else t + offset_ns for t, device in zip(t_ns, t_device, strict=True)]
    wrong = next((k for k, stamp in enumerate(stamps) if not 0 <= stamp < MAX_STAMP_NS), None)
    if wrong is not None:
        raise EpisodeError(f"{stream.file}: /{stream.path} row {wrong}: timestamp {stamps[wrong]} ns is outside "
                           "1970 .. 2100 and cannot be written to a log")
    messages = []
    for stamp, arbitration_id, is_extended, length_code, data in zip(
            stamps, ids.tolist(), extended.tolist(), dlc.tolist(), stream.column("data"), strict=True):
        length = length_code if fd else min(length_code, CAN_CLASSIC_BYTES)
        messages.append((stamp, can.Message(
            timestamp=ns_to_seconds(stamp), arbitration_id=arbitration_id, is_extended_id=is_extended,
            dlc=length_code, data=data[:length].tobytes(), channel=name, is_fd=fd, is_rx=True)))
    return messages


__all__ = ["export_can_log"]
