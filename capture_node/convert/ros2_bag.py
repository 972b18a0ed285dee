"""A ROS 2 bag (rosbag2 MCAP file) as an excap episode: `excap convert BAG.mcap --to episode --map MAPPING.yaml`.

The mapping file (excap.convert.bag_mapping) names which topic is which stream. Each message's log time becomes the
sample's `t_ns` (minus the clock offset a bag written by excap records, so that a converted episode turns back into
the same episode; a foreign bag's t_ns is UTC, clock_offset_ns 0), its header stamp `t_device_ns`. CompressedImage
JPEGs are kept as they are; raw Images (rgb8, bgr8, mono8, ...) and other compressed formats are JPEG-encoded. CAN
frames are decoded with the profile's DBCs into `/can/<name>/decoded/<Message>` as a recording does. The episode is
written through the episode writer under a temporary name and published atomically; topics of the bag that the
mapping does not name are listed, never fatal.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory

from excap.convert.bag_mapping import BagMapping, load_mapping
from excap.convert.can_logs import check_metadata, import_profile
from excap.convert.mcap_metadata import EPISODE_RECORD, STREAMS_RECORD, parse_record
from excap.core.clock import utc_iso
from excap.core.errors import ConfigError, ExcapError
from excap.drivers.can.decoder import FrameDecoder
from excap.episode.h5writer import EpisodeFileWriter
from excap.episode.jpeg_frames import jpeg_size
from excap.episode.metadata import EpisodeMetadata, new_episode_id
from excap.episode.streams import (
    CAN_CLASSIC_BYTES,
    CAN_FD_BYTES,
    StreamSpec,
    camera_spec,
    can_decoded_spec,
    can_spec,
    control_spec,
    events_spec,
    joystick_spec,
    rows_to_batch,
)
from excap.record.publish import publish_atomically

FLUSH_ROWS = 1024
CAMERA_FLUSH_ROWS = 32
JPEG_QUALITY = 90
ROOT_TIMES = ("start_t_ns", "end_t_ns", "duration_s", "started_at", "clock_offset_ns", "recovered")


@dataclass
class BagImportReport:
    path: Path
    samples: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)  # topic -> type, in the bag but not in the mapping
    missing: list[str] = field(default_factory=list)  # mapped topics the bag does not have
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> messages left out

    def summary(self) -> str:
        text = f"{sum(self.samples.values())} samples in {len(self.samples)} streams"
        if self.unmapped:
            text += f"; not mapped: {', '.join(f'{t} ({k})' for t, k in sorted(self.unmapped.items()))}"
        if self.missing:
            text += f"; mapped but not in the bag: {', '.join(self.missing)}"
        if self.skipped:
            text += "".join(f"; skipped {n} {reason}" for reason, n in sorted(self.skipped.items()))
        return text


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def stamp_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


RAW_ENCODINGS = {"rgb8": (3, cv2.COLOR_RGB2BGR), "bgr8": (3, None), "rgba8": (4, cv2.COLOR_RGBA2BGR),
                 "bgra8": (4, cv2.COLOR_BGRA2BGR), "mono8": (1, None), "8uc1": (1, None), "8uc3": (3, None)}


def raw_image_jpeg(msg: Any) -> bytes:
    """sensor_msgs/Image (8-bit encodings) as JPEG bytes; ValueError for another encoding or short data."""
    encoding = str(msg.encoding).lower()
    if encoding not in RAW_ENCODINGS:
        raise ValueError(f"image encoding {msg.encoding!r} (known: {', '.join(RAW_ENCODINGS)})")
    channels, conversion = RAW_ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    raw = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if height <= 0 or width <= 0 or step < width * channels or raw.size < height * step:
        raise ValueError(f"image data of {raw.size} bytes does not hold {height} rows of {step}")
    pixels = raw[: height * step].reshape(height, step)[:, : width * channels].reshape(height, width, channels)
    image: np.ndarray = cv2.cvtColor(pixels, conversion) if conversion is not None else pixels
    return encode_jpeg(image if channels != 1 else image[:, :, 0])


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(encoded.tobytes())


def compressed_jpeg(msg: Any) -> bytes:
    """sensor_msgs/CompressedImage as JPEG bytes: JPEG as is, another format (png, ...) decoded and encoded."""
    data = bytes(msg.data)
    if jpeg_size(data) is not None:
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image format {msg.format!r}")
    return encode_jpeg(image)


class StreamBuffer:
    """Rows of one stream waiting to be appended to the episode file (bounded: flushed every `limit` rows)."""

    def __init__(self, spec: StreamSpec, writer: EpisodeFileWriter, limit: int) -> None:
        self.spec, self.writer, self.limit = spec, writer, limit
        self.rows: list[tuple[Any, ...]] = []
        self.count = 0
        self.writer.ensure_stream(spec)

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= self.limit:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.append(self.spec, rows_to_batch(self.spec, self.rows))
            self.rows = []


class BagImport:
    """One bag being turned into an episode file."""

    def __init__(self, mapping: BagMapping, writer: EpisodeFileWriter, streams: dict[str, Any], offset_ns: int,
                 report: BagImportReport) -> None:
        self.mapping, self.writer, self.recorded, self.offset = mapping, writer, streams, offset_ns
        self.report = report
        self.profile = import_profile(mapping.profile, None).profile
        self.decoder = FrameDecoder(self.profile.dbc_paths) if self.profile.dbc_paths else None
        self.buffers: dict[str, StreamBuffer] = {}
        self.events: list[tuple[int, str, str]] = []
        self.first_t_ns: int | None = None
        self.last_t_ns: int | None = None

    def _skip(self, reason: str) -> None:
        self.report.skipped[reason] = self.report.skipped.get(reason, 0) + 1

    def _attrs(self, path: str, default: dict[str, Any]) -> dict[str, Any]:
        recorded = self.recorded.get(path)
        return dict(recorded["attrs"]) if isinstance(recorded, dict) and isinstance(recorded.get("attrs"), dict) \
            else default

    def _names(self, path: str, column: str, count: int, fallback: str) -> list[str]:
        recorded = self.recorded.get(path)
        names = recorded.get("names", {}).get(column) if isinstance(recorded, dict) else None
        if isinstance(names, list) and len(names) == count:
            return [str(n) for n in names]
        return [f"{fallback}{i}" for i in range(count)]

    def _buffer(self, path: str, make: Any, limit: int = FLUSH_ROWS) -> StreamBuffer:
        buffer = self.buffers.get(path)
        if buffer is None:
            spec: StreamSpec = make()
            spec = StreamSpec(spec.path, spec.columns, self._attrs(path, spec.attrs), spec.queue_capacity)
            buffer = self.buffers[path] = StreamBuffer(spec, self.writer, limit)
        return buffer

    def _seen(self, t_ns: int) -> None:
        self.first_t_ns = t_ns if self.first_t_ns is None else min(self.first_t_ns, t_ns)
        self.last_t_ns = t_ns if self.last_t_ns is None else max(self.last_t_ns, t_ns)

    def joystick(self, name: str, topic: str, t_ns: int, msg: Any) -> None:
        path = f"joystick/{name}"
        axes, buttons = list(msg.axes), [min(max(int(b), 0), 255) for b in msg.buttons]
        buffer = self._buffer(path, lambda: joystick_spec(
            name, self._names(path, "axes", len(axes), "axis"), self._names(path, "buttons", len(buttons), "button"),
            "ros2", topic))
        if buffer.spec.columns[2].shape != (len(axes),) or buffer.spec.columns[3].shape != (len(buttons),):
            self._skip(f"{topic} messages whose axes/buttons count changed")
            return
        buffer.add((t_ns, stamp_ns(msg.header.stamp), axes, buttons))

    def camera(self, name: str, topic: str, t_ns: int, msg: Any, schema: str) -> None:
        try:
            jpeg = raw_image_jpeg(msg) if schema.endswith("/Image") else compressed_jpeg(msg)
        except ValueError as exc:
            self._skip(f"{topic} images ({exc})")
            return
        path = f"cameras/{name}"
        size = jpeg_size(jpeg) or (0, 0)
        buffer = self._buffer(path, lambda: camera_spec(name, size[0], size[1], 0.0, f"ros2:{topic}"),
                              CAMERA_FLUSH_ROWS)
        buffer.add((t_ns, stamp_ns(msg.header.stamp), jpeg))

    def can(self, name: str, topic: str, t_ns: int, msg: Any, schema: str) -> None:
        fd = schema.endswith("/FdFrame")
        if getattr(msg, "is_error", False):
            self._skip(f"{topic} error frames")
            return
        path = f"can/{name}"
        dbc = ", ".join(str(p) for p in self.profile.dbc_paths)
        buffer = self._buffer(path, lambda: can_spec(name, "ros2", fd, dbc))
        width = CAN_FD_BYTES if fd else CAN_CLASSIC_BYTES
        payload = bytes(msg.data)[:width]
        dlc = int(msg.len) if fd else int(msg.dlc)
        data = np.zeros(width, np.uint8)
        data[:len(payload)] = np.frombuffer(payload, np.uint8)
        can_id, extended = int(msg.id), bool(msg.is_extended)
        buffer.add((t_ns, stamp_ns(msg.header.stamp), can_id, extended, dlc, data))
        if self.decoder is None:
            return
        decoded = self.decoder.decode(can_id, extended, payload[: dlc if fd else min(dlc, 8)])
        if decoded is None:
            return
        message = decoded.message
        signals = [(s.name, s.unit or "") for s in message.signals]
        decoded_buffer = self._buffer(f"{path}/decoded/{message.name}",
                                      lambda: can_decoded_spec(name, message.name, message.frame_id, signals))
        decoded_buffer.add((t_ns, decoded.source_address, *decoded.values.values()))

    def commands(self, topic: str, t_ns: int, msg: Any) -> None:
        functions = self.profile.functions
        buffer = self._buffer("control", lambda: control_spec(functions))
        values = [float("nan")] * len(functions)
        index = {name: i for i, name in enumerate(functions)}
        for joint, position in zip(msg.name, msg.position, strict=False):
            if joint in index:
                values[index[joint]] = float(position)
        buffer.add((t_ns, values, str(msg.header.frame_id) != "disabled"))

    def event(self, t_ns: int, msg: Any) -> None:
        for status in msg.status:
            self.events.append((t_ns, str(status.name), str(status.message)))

    def take(self, topic: str, kind: str, name: str, schema: str, log_time: int, msg: Any) -> None:
        t_ns = log_time - self.offset
        self._seen(t_ns)
        if kind == "joystick":
            self.joystick(name, topic, t_ns, msg)
        elif kind == "camera":
            self.camera(name, topic, t_ns, msg, schema)
        elif kind == "can":
            self.can(name, topic, t_ns, msg, schema)
        elif kind == "commands":
            self.commands(topic, t_ns, msg)
        else:
            self.event(t_ns, msg)

    def finish(self) -> None:
        if "control" not in self.buffers:  # every episode has /control: empty when no commands were mapped
            self._buffer("control", lambda: control_spec(self.profile.functions))
        for buffer in self.buffers.values():
            buffer.flush()
            self.report.samples[buffer.spec.path] = buffer.count
            if "dropped" not in buffer.spec.attrs:
                self.writer.set_attrs({"dropped": 0}, buffer.spec.path)


EXPECTED_TYPES = {"joystick": ("sensor_msgs/msg/Joy",),
                  "camera": ("sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"),
                  "can": ("can_msgs/msg/Frame", "ros2_socketcan_msgs/msg/FdFrame"),
                  "commands": ("sensor_msgs/msg/JointState",),
                  "events": ("diagnostic_msgs/msg/DiagnosticArray",)}


def _bag_summary(bag: Path, handle: Any) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
    """Topic -> type of every channel, and the excap metadata records (empty for a foreign bag)."""
    reader = make_reader(handle)
    summary = reader.get_summary()
    if summary is None:
        raise ExcapError(f"{bag}: the MCAP file has no summary (not finished, or written without one)")
    types = {channel.topic: summary.schemas[channel.schema_id].name if channel.schema_id in summary.schemas else ""
             for channel in summary.channels.values()}
    records = {record.name: record.metadata for record in reader.iter_metadata()}
    return types, parse_record(records.get(EPISODE_RECORD, {})), parse_record(records.get(STREAMS_RECORD, {}))


def _messages(bag: Path, handle: Any, topics: list[str]) -> Iterator[tuple[str, str, int, Any]]:
    handle.seek(0)
    reader = make_reader(handle, decoder_factories=[DecoderFactory()])
    for schema, channel, message, decoded in reader.iter_decoded_messages(topics=topics, log_time_order=True):
        yield channel.topic, schema.name if schema is not None else "", message.log_time, decoded


def _metadata(bag: Path, mapping: BagMapping, recorded: dict[str, Any], start_utc_ns: int) -> EpisodeMetadata:
    from dataclasses import fields

    known = {f.name for f in fields(EpisodeMetadata)} - {"software"}
    machine = import_profile(mapping.profile, None).profile
    values: dict[str, Any] = {"machine_model": "unknown", "machine_id": "unknown", "control_pattern": "none",
                              "task": ""}
    values |= {k: v for k, v in recorded.items() if k in known | {"software"} and isinstance(v, str)}
    values |= {"machine_kind": machine.kind, "profile": machine.name}
    if "machine_model" not in recorded:
        values["machine_model"] = machine.model
    check_metadata(mapping.metadata)
    values |= mapping.metadata
    if not recorded:
        note = f"imported from ROS 2 bag {bag.name}"
        values["notes"] = f"{note}; {values['notes']}" if values.get("notes") else note
    if not values.get("episode_id"):
        values["episode_id"] = new_episode_id(values["machine_id"], datetime.fromtimestamp(start_utc_ns / 1e9, tz=UTC))
    try:
        return EpisodeMetadata(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{bag}: episode metadata: {exc}") from exc


def bag_to_episode(bag: Path, mapping_file: Path, out: Path) -> BagImportReport:
    """Write the mapped topics of a rosbag2 MCAP file `bag` as a new episode `out`."""
    mapping = load_mapping(mapping_file)
    if out.exists():
        raise ExcapError(f"{out}: already exists, not overwriting")
    if not bag.is_file():
        raise ExcapError(f"{bag}: no such file")
    report = BagImportReport(out)
    partial = out.parent / f".{out.name}.partial"
    partial.unlink(missing_ok=True)
    try:
        with bag.open("rb") as handle:
            try:
                types, recorded, streams = _bag_summary(bag, handle)
            except ExcapError:
                raise
            except Exception as exc:  # the mcap reader raises many kinds of errors on a damaged file
                raise ExcapError(f"{bag}: not a readable MCAP file ({_one_line(exc)})") from exc
            topics = mapping.topics()
            for topic, (kind, _) in topics.items():
                if topic in types and types[topic] not in EXPECTED_TYPES[kind]:
                    raise ConfigError(f"{mapping_file}: {topic}: is {types[topic]}, a {kind} topic must be "
                                      f"{' or '.join(EXPECTED_TYPES[kind])}")
            report.unmapped = {t: k for t, k in types.items() if t not in topics}
            report.missing = sorted(t for t in topics if t not in types)
            present = [t for t in topics if t in types]
            if not present:
                raise ExcapError(f"{bag}: has none of the mapped topics ({', '.join(sorted(topics))})")
            offset = recorded.get("clock_offset_ns", 0)
            offset = offset if isinstance(offset, int) and not isinstance(offset, bool) else 0
            with EpisodeFileWriter(partial, {}) as writer:
                job = BagImport(mapping, writer, streams, offset, report)
                try:
                    for topic, schema, log_time, msg in _messages(bag, handle, present):
                        kind, name = topics[topic]
                        job.take(topic, kind, name, schema, log_time, msg)
                    job.finish()  # the last rows: a damaged field shows when its rows are written
                except ExcapError:
                    raise
                except Exception as exc:  # damaged chunks, undecodable CDR, fields of unexpected types or range
                    raise ExcapError(f"{bag}: cannot read its messages ({_one_line(exc)})") from exc
                _finish_episode(bag, mapping, writer, job, recorded)
        publish_atomically(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return report


def _finish_episode(bag: Path, mapping: BagMapping, writer: EpisodeFileWriter, job: BagImport,
                    recorded: dict[str, Any]) -> None:
    if job.first_t_ns is None or job.last_t_ns is None:
        raise ExcapError(f"{bag}: the mapped topics hold no messages")
    start = recorded.get("start_t_ns", job.first_t_ns)
    end = recorded.get("end_t_ns", job.last_t_ns)
    start = start if isinstance(start, int) else job.first_t_ns
    end = end if isinstance(end, int) else job.last_t_ns
    metadata = _metadata(bag, mapping, recorded, start + job.offset)
    events = sorted(job.events, key=lambda e: e[0])
    if not mapping.events:
        events.insert(0, (start, "start", json.dumps({"episode_id": metadata.episode_id, "source": bag.name})))
        events.append((end, "stop", json.dumps({"reason": "end of bag"})))
    spec = events_spec()
    writer.append(spec, rows_to_batch(spec, events))
    writer.set_attrs({"dropped": 0}, "events")
    attrs = metadata.to_attrs() | {
        "started_at": recorded.get("started_at") or utc_iso(start, job.offset),
        "clock_offset_ns": job.offset,
        "start_t_ns": start,
        "end_t_ns": end,
        "duration_s": (end - start) / 1e9,
        "recovered": bool(recorded.get("recovered", False)),
    }
    writer.set_attrs(attrs)


__all__ = ["BagImportReport", "bag_to_episode", "raw_image_jpeg"]
