"""An episode as an MCAP file for Foxglove: `excap convert EPISODE --to mcap --profile foxglove`.

Written with the Foxglove SDK's MCAP writer (zstd chunks, message indexes, summary with statistics and chunk
indexes). Topics, with the schemas Foxglove's panels recognise (docs/mcap.md lists their fields):

- `/cameras/<name>`: `foxglove.CompressedImage` (protobuf), the recorded JPEG bytes passed through;
- `/control`: `excap.Control` (JSON): `enabled` and one number per machine function;
- `/joystick/<device>`: `excap.Joystick` (JSON): `axes` and `buttons` by name, `t_device_ns`;
- `/can/<channel>`: `excap.CanFrame` (JSON): `id`, `extended`, `dlc`, `data` (hex), `t_device_ns`;
- `/can/<channel>/decoded/<Message>`: `excap.can.<Message>` (JSON): `source_address`, one number per signal (null
  for a missing value);
- `/events`: `foxglove.Log` (protobuf): level, `kind: detail`;
- `/tf`: `foxglove.FrameTransforms` (JSON): the machine's link poses (excap.schemas.machine_poses) from its
  joints' decoded CAN signals.

Log time (and each message's timestamp) is the sample's t_ns plus the episode's clock_offset_ns: UTC.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import foxglove
import numpy as np
from foxglove.channels import CompressedImageChannel, LogChannel
from foxglove.messages import (
    CompressedImage,
    Log,
    LogLevel,
    Timestamp,
)

from excap.convert.episode_source import (
    CAMERA_BLOCK_ROWS,
    blocks,
    check_log_times,
    clock_offset_ns,
    joint_timeline,
)
from excap.convert.mcap_metadata import (
    EPISODE_RECORD,
    ERROR_EVENTS,
    STREAMS_RECORD,
    WARNING_EVENTS,
    ConvertReport,
    episode_record,
    streams_record,
    write_options,
    writing,
)
from excap.episode.reader import EpisodeReader, Stream
from excap.schemas.machine_poses import FramePose, machine_poses


def timestamp(t_ns: int) -> Timestamp:
    return Timestamp(sec=t_ns // 1_000_000_000, nsec=t_ns % 1_000_000_000)


def json_schema(name: str, properties: dict[str, Any]) -> foxglove.Schema:
    schema = {"title": name, "type": "object", "properties": properties}
    return foxglove.Schema(name=name, encoding="jsonschema", data=json.dumps(schema, sort_keys=True).encode())


FRAME_TRANSFORMS_SCHEMA = json_schema("foxglove.FrameTransforms", {"transforms": {"type": "array", "items": {
    "type": "object", "properties": {
        "timestamp": {"type": "object", "properties": {"sec": {"type": "integer"}, "nsec": {"type": "integer"}}},
        "parent_frame_id": {"type": "string"}, "child_frame_id": {"type": "string"},
        "translation": {"type": "object", "properties": {axis: {"type": "number"} for axis in "xyz"}},
        "rotation": {"type": "object", "properties": {axis: {"type": "number"} for axis in "xyzw"}}}}}})


def transforms_template(poses: list[FramePose]) -> str:
    """A foxglove.FrameTransforms message's JSON text with %s for the stamp (sec, nsec) and each rotation (x, y, z,
    w); frames and translations filled in."""
    items = []
    for pose in poses:
        x, y, z = (repr(float(v)) for v in pose.translation)
        items.append('{"timestamp":{"sec":%s,"nsec":%s},' + f'"parent_frame_id":{json.dumps(pose.parent)},'
                     f'"child_frame_id":{json.dumps(pose.child)},"translation":{{"x":{x},"y":{y},"z":{z}}},'
                     '"rotation":{"x":%s,"y":%s,"z":%s,"w":%s}}')
    return '{"transforms":[' + ",".join(items) + "]}"


def raw_log(channel: foxglove.Channel) -> Any:
    """The logging function of a channel's underlying SDK channel, for encoded messages: `log(data, log_time,
    sink_id)`. `Channel.log` only converts a dict or text to bytes before calling it; millions of CAN rows skip
    that wrapper."""
    return channel.base.log


NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}


def number_texts(values: np.ndarray) -> list[str]:
    """JSON texts of numbers: shortest round-trip form, null for NaN and infinities (JSON has neither)."""
    if values.dtype.kind == "b":
        return ["true" if v else "false" for v in values.tolist()]
    if values.dtype.kind in "iu":
        return [str(v) for v in values.tolist()]
    if not len(values):
        return []
    # the C JSON encoder writes floats as repr does, NaN and infinities as NaN / Infinity / -Infinity
    texts = json.dumps(values.astype(np.float64).tolist())[1:-1].split(", ")
    if not np.all(np.isfinite(values)):
        texts = ["null" if text in _NOT_FINITE else text for text in texts]
    return texts


_NOT_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})


def object_template(fields: list[str]) -> str:
    """A JSON object's text with a %s for each field's value (field names JSON-escaped, '%' doubled)."""
    return "{" + ",".join(f"{json.dumps(name)}:%s".replace("%", "%%").replace("%%s", "%s") for name in fields) + "}"


@dataclass(frozen=True)
class JsonField:
    """One field of a JSON message: its name and how to get its texts from a block (a column, or a column of a
    vector column)."""

    name: str
    column: str
    index: int | None = None
    kind: str = "number"  # or "hex" (CAN data, with a length column)


class FoxgloveWriter:
    """Writes one episode's streams, stream by stream, to an open Foxglove SDK MCAP context."""

    def __init__(self, reader: EpisodeReader, context: foxglove.Context, report: ConvertReport) -> None:
        self.reader, self.context, self.report = reader, context, report
        self.offset = clock_offset_ns(reader)

    def _json_stream(self, stream: Stream, schema: foxglove.Schema, template: str, fields: list[JsonField]) -> None:
        """Log every row of `stream` as JSON text `template` % (field texts)."""
        topic = f"/{stream.path}"
        channel = foxglove.Channel(topic, schema=schema, message_encoding="json", context=self.context)
        columns = sorted({f.column for f in fields} | ({"dlc"} if any(f.kind == "hex" for f in fields) else set()))
        fd = stream.fd
        for block in blocks(stream, columns, self.offset):
            texts = []
            for f in fields:
                values = block.columns[f.column]
                if f.kind == "hex":
                    lengths = block.columns["dlc"].tolist()
                    texts.append([f'"{row[: n if fd else min(n, 8)].tobytes().hex()}"'
                                  for row, n in zip(values, lengths, strict=True)])
                else:
                    texts.append(number_texts(values if f.index is None else values[:, f.index]))
            log = raw_log(channel)
            for log_time, row in zip(block.log_time_ns.tolist(), zip(*texts, strict=True), strict=True):
                log((template % row).encode(), log_time, None)
            self.report.count(topic, len(block))

    def control(self, stream: Stream) -> None:
        names = stream.names("commands")
        schema = json_schema("excap.Control", {"enabled": {"type": "boolean"}, **{n: NUMBER for n in names}})
        fields = [JsonField("enabled", "enabled"), *(JsonField(n, "commands", i) for i, n in enumerate(names))]
        self._json_stream(stream, schema, object_template([f.name for f in fields]), fields)

    def joystick(self, stream: Stream) -> None:
        axes, buttons = stream.names("axes"), stream.names("buttons")
        schema = json_schema("excap.Joystick", {
            "t_device_ns": INTEGER, "axes": {"type": "object", "properties": {a: NUMBER for a in axes}},
            "buttons": {"type": "object", "properties": {b: INTEGER for b in buttons}}})
        axis_fields = [JsonField(a, "axes", i) for i, a in enumerate(axes)]
        button_fields = [JsonField(b, "buttons", i) for i, b in enumerate(buttons)]
        template = (object_template(["t_device_ns", "axes", "buttons"])
                    % ("%s", object_template(axes), object_template(buttons)))
        self._json_stream(stream, schema, template, [JsonField("t_device_ns", "t_device_ns"), *axis_fields,
                                                     *button_fields])

    def can(self, stream: Stream) -> None:
        schema = json_schema("excap.CanFrame", {"t_device_ns": INTEGER, "id": INTEGER, "extended": {"type": "boolean"},
                                                "dlc": INTEGER, "data": {"type": "string"}})
        fields = [JsonField(name, name) for name in ("t_device_ns", "id", "extended", "dlc")]
        fields.append(JsonField("data", "data", kind="hex"))
        self._json_stream(stream, schema, object_template([f.name for f in fields]), fields)

    def can_decoded(self, stream: Stream) -> None:
        signals = [c for c in stream.info.columns if c not in ("t_ns", "source_address")]
        message = stream.path.rsplit("/", 1)[-1]
        schema = json_schema(f"excap.can.{message}", {"source_address": INTEGER, **{s: NUMBER for s in signals}})
        fields = [JsonField(name, name) for name in ("source_address", *signals)]
        self._json_stream(stream, schema, object_template([f.name for f in fields]), fields)

    def camera(self, stream: Stream) -> None:
        topic = f"/{stream.path}"
        name = stream.path.split("/", 1)[1]
        channel = CompressedImageChannel(topic, context=self.context)
        for block in blocks(stream, ["frames"], self.offset, CAMERA_BLOCK_ROWS):
            for frame, log_time in zip(block.columns["frames"], block.log_time_ns.tolist(), strict=True):
                channel.log(CompressedImage(timestamp=timestamp(log_time), frame_id=name, data=frame.tobytes(),
                                            format="jpeg"), log_time=log_time)
            self.report.count(topic, len(block))

    def events(self) -> None:
        channel = LogChannel("/events", context=self.context)
        events = self.reader.events()
        check_log_times(np.array([event.t_ns + self.offset for event in events], np.int64),
                        f"{self.reader.path}: /events")
        for event in events:
            log_time = event.t_ns + self.offset
            level = LogLevel.Error if event.kind in ERROR_EVENTS else \
                LogLevel.Warning if event.kind in WARNING_EVENTS else LogLevel.Info
            text = f"{event.kind}: {json.dumps(event.detail, sort_keys=True)}" if event.detail else event.kind
            channel.log(Log(timestamp=timestamp(log_time), level=level, message=text, name="excap"), log_time=log_time)
        self.report.count("/events", len(events))

    def transforms(self) -> None:
        """The machine's link poses as `foxglove.FrameTransforms` (JSON), computed for a block of times at once."""
        kind = str(self.reader.metadata.get("machine_kind", ""))
        timeline = joint_timeline(self.reader)
        if not len(timeline):
            return
        channel = foxglove.Channel("/tf", schema=FRAME_TRANSFORMS_SCHEMA, message_encoding="json",
                                   context=self.context)
        log = raw_log(channel)
        check_log_times(timeline.t_ns[:1] + self.offset, f"{self.reader.path}: joint signals")
        for times, angles in timeline.blocks():
            joints = {name: np.nan_to_num(angles[:, i]) for i, name in enumerate(timeline.names)}
            poses = machine_poses(kind, joints)
            template = transforms_template(poses)
            log_times = times + self.offset
            stamp = [number_texts(log_times // 1_000_000_000), number_texts(log_times % 1_000_000_000)]
            columns: list[list[str]] = []
            for pose in poses:
                columns += stamp + [number_texts(np.broadcast_to(np.asarray(c, np.float64), times.shape))
                                    for c in pose.rotation]
            for log_time, row in zip(log_times.tolist(), zip(*columns, strict=True), strict=True):
                log((template % row).encode(), log_time, None)
        self.report.count("/tf", len(timeline))

    def write_all(self) -> None:
        writers = {"control": self.control, "joystick": self.joystick, "can": self.can,
                   "can_decoded": self.can_decoded, "camera": self.camera}
        for info in self.reader.streams:
            if info.kind in writers:
                writers[info.kind](self.reader.stream(info.path))
        self.events()
        self.transforms()


def episode_to_foxglove_mcap(episode: Path, out: Path) -> ConvertReport:
    """Write `episode` as one indexed, zstd-chunked MCAP file `out` for Foxglove; the messages per topic."""
    report = ConvertReport(out)
    with EpisodeReader(episode) as reader, writing(out) as partial:
        report.duration_s = float(reader.metadata.get("duration_s", 0.0) or 0.0)
        context = foxglove.Context()
        writer = foxglove.open_mcap(partial, allow_overwrite=True, context=context, writer_options=write_options(""))
        try:
            writer.write_metadata(EPISODE_RECORD, episode_record(reader))
            writer.write_metadata(STREAMS_RECORD, streams_record(reader))
            FoxgloveWriter(reader, context, report).write_all()
        finally:
            writer.close()
    return report


__all__ = ["ConvertReport", "episode_to_foxglove_mcap"]
