"""CAN log files to episodes: every format python-can reads (back to a log: excap.convert.can_log_export).

Import reads candump .log, Vector .asc and .blf, PEAK .trc, python-can .csv and ASAM .mf4 (with
`asammdf`) into an episode: one raw stream per log channel, DBC-decoded streams when a DBC is
given, DM1 diagnostics as events. Log timestamps become t_ns = t_device_ns = round(timestamp * 1e9)
and clock_offset_ns is 0, so t_ns is UTC nanoseconds.
"""

import json
import re
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np

from excap.convert.can_log_reading import SkippedFrames, read_valid_messages
from excap.core.clock import utc_iso
from excap.core.errors import ConfigError, ExcapError
from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.can.dm1 import Dm1Monitor
from excap.drivers.machine.profiles import DEFAULT_PROFILE, PROFILES_DIR, MachineProfile, load_profile
from excap.episode.h5writer import EpisodeFileWriter
from excap.episode.metadata import EpisodeMetadata, new_episode_id
from excap.episode.schema import load_episode_schema
from excap.episode.streams import (
    CAN_CLASSIC_BYTES,
    CAN_FD_BYTES,
    can_decoded_spec,
    can_spec,
    control_spec,
    events_spec,
    rows_to_batch,
)
from excap.episode.structure import EPISODE_ID
from excap.record.publish import publish_atomically

DEFAULT_METADATA: dict[str, str] = {  # the machine kind comes from the import's profile (see import_profile)
    "machine_model": "unknown",
    "machine_id": "unknown",
    "control_pattern": "none",
    "profile": "",
    "task": "",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_METADATA_KEYS = {f.name for f in fields(EpisodeMetadata)} - {"software"}
_NAME_KEYS = ("profile", "machine_id")  # used to find files or to name them: no path separators
TEXT_LIMITS = {"notes": 2000}  # characters; every other metadata value at most 200
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def seconds_to_ns(seconds: float) -> int:
    """Integer nanoseconds of float seconds, from their shortest decimal form: a log's 1622547830.084650
    becomes exactly 1622547830084650000, and `ns_to_seconds` gives back the very same float."""
    return int(Decimal(repr(float(seconds))).scaleb(9).to_integral_value(ROUND_HALF_EVEN))


def ns_to_seconds(t_ns: int) -> float:
    """Nearest float seconds of integer nanoseconds (int / int division is correctly rounded)."""
    return int(t_ns) / 1_000_000_000


def channel_name(log_channel: Any, default: str) -> str:
    """Stream name of a python-can channel: integers n become 'can<n>', text is kept (file-name safe)."""
    if log_channel is None or log_channel == "":
        return default
    if isinstance(log_channel, int | np.integer):
        return f"can{int(log_channel)}"
    return _SAFE_NAME.sub("_", str(log_channel)).strip("_") or default


# -- import -----------------------------------------------------------------------------------


@dataclass
class _LogChannel:
    log_channel: Any
    timestamps: list[float] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    extended: list[bool] = field(default_factory=list)
    dlc: list[int] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    fd: bool = False


@dataclass
class ImportReport:
    path: Path
    frames: dict[str, int]
    error_frames: int = 0
    decoded: int = 0
    unknown: int = 0  # frames matching no DBC message, kept raw only
    undecodable: int = 0  # frames matching a message but of the wrong length or content, kept raw only
    reordered: int = 0  # frames the log held out of time order, sorted by timestamp per channel
    dm1: int = 0
    transport_timeouts: int = 0
    transport_aborts: int = 0
    skipped: int = 0  # invalid frames and unreadable lines left out (see skip_reasons)
    skip_reasons: list[str] = field(default_factory=list)  # the first few, "line 12: DLC 99 out of range 0..8"

    def counts(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k not in ("path", "skip_reasons")}

    def summary(self) -> str:
        channels = ", ".join(f"{name} {count}" for name, count in self.frames.items())
        text = f"{sum(self.frames.values())} frames ({channels})"
        if self.decoded or self.unknown or self.undecodable:
            text += f"; decoded {self.decoded}, no DBC message {self.unknown}, wrong length {self.undecodable}"
        extras = {"error frames": self.error_frames, "reordered": self.reordered, "DM1 messages": self.dm1,
                  "transport timeouts": self.transport_timeouts, "transport aborts": self.transport_aborts}
        text += "".join(f"; {name} {count}" for name, count in extras.items() if count)
        if self.skipped:
            more = "; ..." if self.skipped > len(self.skip_reasons) else ""
            text += f"; skipped {self.skipped} invalid ({'; '.join(self.skip_reasons)}{more})"
        return text


def check_metadata(overrides: dict[str, Any]) -> None:
    """The metadata given for an import (`--set KEY=VALUE`): known keys only, values one line of sane length,
    names that become file names or are looked up as files free of path separators; ConfigError otherwise."""
    unknown = sorted(set(overrides) - _METADATA_KEYS)
    if unknown:
        raise ConfigError(f"unknown episode metadata {', '.join(unknown)} (known: {', '.join(sorted(_METADATA_KEYS))})")
    for key, value in overrides.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"episode metadata {key}: expected text, not {type(value).__name__}")
        limit = TEXT_LIMITS.get(key, 200)
        if len(value) > limit or any(not c.isprintable() for c in value):
            raise ConfigError(f"episode metadata {key}: at most {limit} printable characters on one line")
        if key == "episode_id" and not EPISODE_ID.fullmatch(value):
            raise ConfigError(f"episode metadata episode_id {value!r}: an episode id is 1 to 128 letters, digits, "
                              "'_', '.' or '-', starting with a letter or digit (no path separators)")
        if key in _NAME_KEYS and value and not _NAME.fullmatch(value):
            raise ConfigError(f"episode metadata {key} {value!r}: use letters, digits, '_', '.' or '-' "
                              "(no path separators)")


@dataclass(frozen=True)
class ImportProfile:
    """The machine profile of an import: it decides the episode's machine kind and the /control columns. Given
    explicitly, its name and model are recorded too; implied (by `machine_kind`, or the default profile when
    neither is given), they stay unknown."""

    profile: MachineProfile
    explicit: bool

    def metadata(self) -> dict[str, str]:
        named = {"profile": self.profile.name, "machine_model": self.profile.model} if self.explicit else {}
        return {"machine_kind": self.profile.kind, **named}


def import_profile(profile: str | Path | None, machine_kind: str | None) -> ImportProfile:
    """The profile of an import: `profile` (a name in schemas/profiles or a YAML file), else the shipped profile
    of `machine_kind`, else the default profile (excavator_20t). A `machine_kind` other than the profile's kind,
    or one no profile has, is a ConfigError."""
    kinds = load_episode_schema(1)["root_attributes"]["machine_kind"]["enum"]
    if machine_kind is not None and machine_kind not in kinds:
        raise ConfigError(f"machine_kind must be one of {', '.join(kinds)}, not {machine_kind!r}")
    if profile is not None:
        chosen = load_profile(profile)
        if machine_kind is not None and machine_kind != chosen.kind:
            raise ConfigError(f"machine_kind {machine_kind!r} contradicts profile {chosen.name} (kind {chosen.kind})")
        if chosen.kind not in kinds:
            raise ConfigError(f"profile {chosen.name}: machine kind {chosen.kind!r} is not one of {', '.join(kinds)}")
        return ImportProfile(chosen, explicit=True)
    if machine_kind is None:
        return ImportProfile(load_profile(DEFAULT_PROFILE), explicit=False)
    shipped = [load_profile(path) for path in sorted(PROFILES_DIR.glob("*.yaml"))]
    of_kind = [p for p in shipped if p.kind == machine_kind]
    if len(of_kind) != 1:
        names = ", ".join(p.name for p in of_kind) or "none"
        raise ConfigError(f"machine_kind {machine_kind!r}: give the profile (profiles of that kind: {names})")
    return ImportProfile(of_kind[0], explicit=False)


def _metadata(log: Path, start_utc_ns: int, overrides: dict[str, Any], profile: ImportProfile) -> EpisodeMetadata:
    check_metadata(overrides)
    values: dict[str, Any] = (DEFAULT_METADATA | profile.metadata()
                              | {k: v for k, v in overrides.items() if v is not None})
    note = f"imported from CAN log {log.name}"
    values["notes"] = f"{note}; {values['notes']}" if values.get("notes") else note
    if not values.get("episode_id"):
        when = datetime.fromtimestamp(start_utc_ns / 1e9, tz=UTC)
        values["episode_id"] = new_episode_id(values["machine_id"], when)
    try:
        return EpisodeMetadata(**values)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _collect(log: Path, skipped: SkippedFrames) -> tuple[dict[Any, _LogChannel], list[tuple[float, Any, int]]]:
    channels: dict[Any, _LogChannel] = {}
    error_frames: list[tuple[float, Any, int]] = []
    for msg in read_valid_messages(log, skipped):
        if msg.is_error_frame:
            error_frames.append((msg.timestamp, msg.channel, msg.arbitration_id))
            continue
        key = msg.channel if isinstance(msg.channel, int | str) else None
        channel = channels.get(key)
        if channel is None:
            channel = channels[key] = _LogChannel(key)
        channel.timestamps.append(msg.timestamp)
        channel.ids.append(msg.arbitration_id)
        channel.extended.append(msg.is_extended_id)
        channel.dlc.append(msg.dlc)
        channel.payloads.append(bytes(msg.data or b""))
        channel.fd = channel.fd or msg.is_fd
    if not channels:
        detail = f" ({skipped.summary()})" if skipped.count else ""
        raise ExcapError(f"{log}: no valid CAN frames in the log{detail}")
    return channels, error_frames


def _names(channels: dict[Any, _LogChannel], default: str) -> dict[Any, str]:
    if len(channels) == 1:
        return {key: default for key in channels}
    names: dict[Any, str] = {}
    for key in channels:
        name = channel_name(key, default)
        while name in names.values():
            name += "_"
        names[key] = name
    return names


def import_can_log(log: Path, out: Path, dbc: Path | None = None, channel: str = "can0",
                   profile: str | Path | None = None, **metadata: Any) -> Path:
    """Write a CAN log as a new episode file `out` and return its path.

    `channel` names the stream of a single-channel log; a log with several channels gets one stream
    per channel, named after the log's channels. `profile` is the machine's profile: it decides the machine
    kind, model and /control columns, and without `dbc` the frames are decoded with its DBCs (see
    `import_profile` for an import without one). `metadata` overrides EpisodeMetadata fields.
    """
    return import_can_log_report(log, out, dbc, channel, profile, **metadata).path


def import_can_log_report(log: Path, out: Path, dbc: Path | None = None, channel: str = "can0",
                          profile: str | Path | None = None, **metadata: Any) -> ImportReport:
    """`import_can_log`, returning the frame, decoding and diagnostics counts as well."""
    if out.exists():
        raise ExcapError(f"{out}: already exists, not overwriting")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", channel):
        raise ConfigError(f"channel name {channel!r}: use letters, digits, '_', '.' or '-'")
    check_metadata(metadata)
    machine = import_profile(profile, metadata.get("machine_kind"))
    dbcs = [dbc] if dbc is not None else machine.profile.dbc_paths if machine.explicit else []
    decoder = FrameDecoder(dbcs) if dbcs else None
    skipped = SkippedFrames()
    channels, error_frames = _collect(log, skipped)
    names = _names(channels, channel)
    report = ImportReport(out, {}, skipped=skipped.count, skip_reasons=list(skipped.reasons))
    events: list[tuple[int, str, dict[str, Any]]] = []
    raw_streams: list[tuple[Any, dict[str, Any]]] = []
    decoded_streams: list[tuple[Any, dict[str, Any]]] = []
    for key, frames in channels.items():
        name = names[key]
        t_ns = np.array([seconds_to_ns(t) for t in frames.timestamps], dtype=np.int64)
        order = np.argsort(t_ns, kind="stable")
        if np.any(np.diff(t_ns) < 0):
            report.reordered += int(np.count_nonzero(order != np.arange(len(order))))
        width = CAN_FD_BYTES if frames.fd else CAN_CLASSIC_BYTES
        data = np.zeros((len(order), width), np.uint8)
        payloads = [frames.payloads[i][:width] for i in order]
        for row, payload in enumerate(payloads):
            data[row, :len(payload)] = np.frombuffer(payload, np.uint8)
        t_sorted = t_ns[order]
        spec = can_spec(name, "log", frames.fd, ", ".join(str(path) for path in dbcs))
        raw: dict[str, np.ndarray] = {
            "t_ns": t_sorted, "t_device_ns": t_sorted.copy(),
            "id": np.asarray(frames.ids, np.uint32)[order], "extended": np.asarray(frames.extended, bool)[order],
            "dlc": np.asarray(frames.dlc, np.uint8)[order], "data": data,
        }
        raw_streams.append((spec, raw))
        report.frames[name] = len(order)
        decoded_streams += _decode_channel(name, decoder, raw, payloads, events, report)
    for timestamp, log_channel, arbitration_id in error_frames:
        detail = {"channel": names.get(log_channel, channel), "id": arbitration_id}
        events.append((seconds_to_ns(timestamp), "can_error_frame", detail))
    report.error_frames = len(error_frames)
    if decoder is not None:
        report.unknown, report.undecodable = decoder.unknown, decoder.undecodable
    _write_episode(log, out, raw_streams, decoded_streams, events, report, metadata, machine)
    return report


def _decode_channel(name: str, decoder: FrameDecoder | None, raw: dict[str, np.ndarray],
                    payloads: list[bytes], events: list[tuple[int, str, dict[str, Any]]],
                    report: ImportReport) -> list[tuple[Any, dict[str, Any]]]:
    """Decoded-message streams of one channel (in frame order); DM1 messages go to `events`."""
    monitor = Dm1Monitor()
    rows: dict[str, tuple[Any, list[tuple[Any, ...]]]] = {}
    t_list = raw["t_ns"].tolist()
    for t, arbitration_id, extended, payload in zip(t_list, raw["id"].tolist(), raw["extended"].tolist(),
                                                    payloads, strict=True):
        if extended:
            dm1 = monitor.feed(arbitration_id, payload, t)
            if dm1 is not None:
                report.dm1 += 1
                events.append((t, "dm1", {"channel": name, "source_address": dm1[0], **dm1[1].detail()}))
        if decoder is None:
            continue
        decoded = decoder.decode(arbitration_id, extended, payload)
        if decoded is None:
            continue
        report.decoded += 1
        entry = rows.get(decoded.message.name)
        if entry is None:
            signals = [(s.name, s.unit or "") for s in decoded.message.signals]
            spec = can_decoded_spec(name, decoded.message.name, decoded.message.frame_id, signals)
            entry = rows[decoded.message.name] = (spec, [])
        entry[1].append((t, decoded.source_address, *decoded.values.values()))
    report.transport_timeouts += monitor.transport.stats.timeouts
    report.transport_aborts += monitor.transport.stats.aborts
    return [(spec, rows_to_batch(spec, message_rows)) for spec, message_rows in rows.values()]


def _write_episode(log: Path, out: Path, raw_streams: list[tuple[Any, dict[str, Any]]],
                   decoded_streams: list[tuple[Any, dict[str, Any]]], events: list[tuple[int, str, dict[str, Any]]],
                   report: ImportReport, overrides: dict[str, Any], machine: ImportProfile) -> None:
    raw_times = [batch["t_ns"] for _, batch in raw_streams]
    streams = raw_streams + decoded_streams
    start_t_ns = min(int(t[0]) for t in raw_times)
    end_t_ns = max(int(t[-1]) for t in raw_times)
    metadata = _metadata(log, start_t_ns, overrides, machine)
    attrs = metadata.to_attrs() | {
        "started_at": utc_iso(start_t_ns, 0),
        "clock_offset_ns": 0,
        "start_t_ns": start_t_ns,
        "recovered": False,
        "duration_s": (end_t_ns - start_t_ns) / 1e9,
        "end_t_ns": end_t_ns,
    }
    events = sorted(events, key=lambda e: e[0])
    events.insert(0, (start_t_ns, "start", {"episode_id": metadata.episode_id, "source": log.name}))
    events.insert(1, (start_t_ns, "can_import", {"source": log.name, **report.counts()}))
    events.append((end_t_ns, "stop", {"reason": "end of log"}))
    event_stream = events_spec()
    control = control_spec(machine.profile.functions)
    partial = out.parent / f".{out.name}.partial"
    partial.unlink(missing_ok=True)
    try:
        with EpisodeFileWriter(partial, attrs) as writer:
            writer.ensure_stream(control)
            writer.append(event_stream, rows_to_batch(
                event_stream, [(t, kind, json.dumps(detail, sort_keys=True)) for t, kind, detail in events]))
            for spec, batch in streams:
                writer.append(spec, batch)
            for spec in [control, event_stream, *(s for s, _ in streams)]:
                writer.set_attrs({"dropped": 0}, spec.path)
            writer.set_attrs({"source_log": log.name}, "can")
        publish_atomically(partial, out)
    finally:
        partial.unlink(missing_ok=True)


__all__ = ["ImportProfile", "ImportReport", "check_metadata", "import_can_log",
           "import_can_log_report", "import_profile", "seconds_to_ns"]
