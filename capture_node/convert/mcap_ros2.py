"""An episode as a ROS 2 bag (rosbag2's MCAP storage): `excap convert EPISODE --to mcap --profile ros2`.

One MCAP file with profile `ros2`, `ros2msg` schemas and CDR messages, zstd chunks, message indexes and a summary,
which `ros2 bag info` / `ros2 bag play` read with the `rosbag2_storage_mcap` plugin (no metadata.yaml needed for
`ros2 bag info FILE.mcap`). Topics follow the live node's (`excap node`, prefix /excap):

- `/excap/joy/<device>`: sensor_msgs/msg/Joy (stamp: t_device_ns; frame_id: the device);
- `/excap/commands`: sensor_msgs/msg/JointState (name: machine functions; position: commands; frame_id `enabled` or
  `disabled`; stamp: the log time);
- `/excap/cameras/<name>/compressed`: sensor_msgs/msg/CompressedImage (jpeg: the recorded bytes; stamp: t_device_ns);
- `/excap/can/<channel>`: can_msgs/msg/Frame (CAN FD: ros2_socketcan_msgs/msg/FdFrame; stamp: t_device_ns);
- `/excap/joint_states`: sensor_msgs/msg/JointState, the machine kind's joints (rad) from decoded CAN signals;
- `/excap/events`: diagnostic_msgs/msg/DiagnosticArray, one status per event (name: kind, message: JSON detail).

Log time is t_ns + clock_offset_ns (UTC); the episode's metadata and stream attributes are MCAP metadata records
(excap.convert.mcap_metadata), so that `excap convert BAG --to episode` rebuilds the same episode.
"""

import json
import math
import struct
from pathlib import Path
from typing import Any

import foxglove
import foxglove.mcap
import numpy as np

from excap.convert import cdr
from excap.convert.episode_source import (
    CAMERA_BLOCK_ROWS,
    blocks,
    check_log_times,
    clock_offset_ns,
    joint_timeline,
)
from excap.convert.mcap_foxglove import raw_log
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
from excap.convert.ros2_msgs import (
    CAN_FD_FRAME,
    CAN_FRAME,
    COMPRESSED_IMAGE,
    DEFINITIONS,
    DIAGNOSTIC_ARRAY,
    JOINT_STATE,
    JOY,
)
from excap.core.errors import ExcapError
from excap.episode.reader import EpisodeReader, Stream

PREFIX = "/excap"
OK, WARN, ERROR = 0, 1, 2


def ros_topic(path: str) -> str:
    """The bag topic of an episode stream path (joystick/x -> /excap/joy/x, ...)."""
    kind, _, name = path.partition("/")
    if path == "control":
        return f"{PREFIX}/commands"
    if path == "events":
        return f"{PREFIX}/events"
    if kind == "joystick":
        return f"{PREFIX}/joy/{name}"
    if kind == "cameras":
        return f"{PREFIX}/cameras/{name}/compressed"
    return f"{PREFIX}/{path}"


class Ros2BagWriter:
    """Writes one episode's streams, stream by stream, as CDR messages to an open Foxglove SDK MCAP context."""

    def __init__(self, reader: EpisodeReader, context: foxglove.Context, report: ConvertReport) -> None:
        self.reader, self.context, self.report = reader, context, report
        self.offset = clock_offset_ns(reader)

    def _channel(self, topic: str, datatype: str) -> Any:
        """The raw logging function of a new channel (excap.convert.mcap_foxglove.raw_log)."""
        schema = foxglove.Schema(name=datatype, encoding="ros2msg", data=DEFINITIONS[datatype].encode())
        return raw_log(foxglove.Channel(topic, schema=schema, message_encoding="cdr", context=self.context))

    def _add(self, log: Any, log_time: int, data: bytes, sequence: int) -> None:
        log(data, log_time, None)

    def _stamp_error(self, stream: Stream, row: int, exc: struct.error) -> ExcapError:
        return ExcapError(f"{stream.file}: /{stream.path} row {row}: a time does not fit a ROS 2 stamp ({exc})")

    def joystick(self, stream: Stream) -> None:
        topic, device = ros_topic(stream.path), stream.path.split("/", 1)[1]
        channel, prefix = self._channel(topic, JOY), cdr.header_prefix(device.encode())
        for block in blocks(stream, ["t_device_ns", "axes", "buttons"], self.offset):
            device_ns, axes, buttons = (block.columns[c] for c in ("t_device_ns", "axes", "buttons"))
            for i, log_time in enumerate(block.log_time_ns.tolist()):
                try:
                    data = cdr.joy(int(device_ns[i]), prefix, axes[i], buttons[i])
                except struct.error as exc:
                    raise self._stamp_error(stream, block.begin + i, exc) from exc
                self._add(channel, log_time, data, block.begin + i)
            self.report.count(topic, len(block))

    def control(self, stream: Stream) -> None:
        topic = ros_topic(stream.path)
        channel = self._channel(topic, JOINT_STATE)
        names = [name.encode() for name in stream.names("commands")]
        for block in blocks(stream, ["enabled", "commands"], self.offset):
            enabled, commands = block.columns["enabled"].tolist(), block.columns["commands"]
            for i, log_time in enumerate(block.log_time_ns.tolist()):
                frame_id = b"enabled" if enabled[i] else b"disabled"
                self._add(channel, log_time, cdr.joint_state(log_time, frame_id, names, commands[i]), block.begin + i)
            self.report.count(topic, len(block))

    def camera(self, stream: Stream) -> None:
        topic, name = ros_topic(stream.path), stream.path.split("/", 1)[1]
        channel, prefix = self._channel(topic, COMPRESSED_IMAGE), cdr.header_prefix(name.encode())
        for block in blocks(stream, ["t_device_ns", "frames"], self.offset, CAMERA_BLOCK_ROWS):
            device_ns, frames = block.columns["t_device_ns"].tolist(), block.columns["frames"]
            for i, log_time in enumerate(block.log_time_ns.tolist()):
                try:
                    data = cdr.compressed_image(device_ns[i], prefix, b"jpeg", frames[i].tobytes())
                except struct.error as exc:
                    raise self._stamp_error(stream, block.begin + i, exc) from exc
                self._add(channel, log_time, data, block.begin + i)
            self.report.count(topic, len(block))

    def can(self, stream: Stream) -> None:
        topic, name, fd = ros_topic(stream.path), stream.path.split("/", 1)[1], stream.fd
        channel = self._channel(topic, CAN_FD_FRAME if fd else CAN_FRAME)
        prefix = cdr.header_prefix(name.encode())
        encode = cdr.can_fd_frame if fd else cdr.can_frame
        for block in blocks(stream, ["t_device_ns", "id", "extended", "dlc", "data"], self.offset):
            device_ns, ids, extended, dlc = (block.columns[c].tolist()
                                             for c in ("t_device_ns", "id", "extended", "dlc"))
            data = block.columns["data"]
            for i, log_time in enumerate(block.log_time_ns.tolist()):
                length = data.shape[1] if fd else min(dlc[i], 8)
                try:
                    message = encode(device_ns[i], prefix, ids[i], extended[i], dlc[i] if not fd else length,
                                     data[i, :length].tobytes())
                except struct.error as exc:
                    raise self._stamp_error(stream, block.begin + i, exc) from exc
                self._add(channel, log_time, message, block.begin + i)
            self.report.count(topic, len(block))

    def events(self) -> None:
        topic = ros_topic("events")
        channel = self._channel(topic, DIAGNOSTIC_ARRAY)
        episode_id = str(self.reader.metadata.get("episode_id", "")).encode()
        events = self.reader.events()
        check_log_times(np.array([event.t_ns + self.offset for event in events], np.int64),
                        f"{self.reader.path}: /events")
        for sequence, event in enumerate(events):
            log_time = event.t_ns + self.offset
            level = ERROR if event.kind in ERROR_EVENTS else WARN if event.kind in WARNING_EVENTS else OK
            detail = json.dumps(event.detail, sort_keys=True).encode()
            self._add(channel, log_time, cdr.diagnostic_array(log_time, b"excap", [
                (level, event.kind.encode(), detail, episode_id)]), sequence)
        self.report.count(topic, len(events))

    def joint_states(self) -> None:
        timeline = joint_timeline(self.reader)
        if not len(timeline):
            return
        check_log_times(timeline.t_ns[:1] + self.offset, f"{self.reader.path}: joint signals")
        topic = f"{PREFIX}/joint_states"
        channel = self._channel(topic, JOINT_STATE)
        names = [name.encode() for name in timeline.names]
        for sequence, (t_ns, angles) in enumerate((t, a) for times, block in timeline.blocks()
                                                  for t, a in zip(times.tolist(), block, strict=True)):
            log_time = t_ns + self.offset
            known = [i for i, angle in enumerate(angles.tolist()) if math.isfinite(angle)]
            self._add(channel, log_time, cdr.joint_state(log_time, b"base_link", [names[i] for i in known],
                                                         angles[known]), sequence)
        self.report.count(topic, len(timeline))

    def write_all(self) -> None:
        writers = {"control": self.control, "joystick": self.joystick, "can": self.can, "camera": self.camera}
        for info in self.reader.streams:
            if info.kind in writers:
                writers[info.kind](self.reader.stream(info.path))
        self.events()
        self.joint_states()


def episode_to_ros2_mcap(episode: Path, out: Path) -> ConvertReport:
    """Write `episode` as a rosbag2 MCAP file `out`; the messages per topic."""
    report = ConvertReport(out)
    with EpisodeReader(episode) as reader, writing(out) as partial:
        report.duration_s = float(reader.metadata.get("duration_s", 0.0) or 0.0)
        context = foxglove.Context()
        writer = foxglove.open_mcap(partial, allow_overwrite=True, context=context,
                                    writer_options=write_options("ros2"))
        try:
            writer.write_metadata(EPISODE_RECORD, episode_record(reader))
            writer.write_metadata(STREAMS_RECORD, streams_record(reader))
            Ros2BagWriter(reader, context, report).write_all()
        finally:
            writer.close()
    return report


__all__ = ["episode_to_ros2_mcap", "ros_topic"]
