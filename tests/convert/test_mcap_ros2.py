"""`excap convert EPISODE --to mcap --profile ros2`: real simulated episodes as rosbag2 MCAP files, read back with
mcap-ros2-support's decoder and, independently, with rosbags; and the round trip episode -> bag -> episode, equal in
every sample and timestamp."""

import math
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from excap.convert.episode_source import joint_timeline
from excap.convert.mcap_ros2 import episode_to_ros2_mcap, ros_topic
from excap.convert.ros2_bag import bag_to_episode
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from tests.support import mcap_files

MAPPING = """profile: {profile}
joysticks: {{operator: /excap/joy/operator}}
cameras: {{{cameras}}}
can: {{can0: /excap/can/can0}}
commands: /excap/commands
events: /excap/events
"""


@pytest.fixture(scope="module")
def loader_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real recording of the simulated wheel loader, with one small camera."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    return run_sim_session(SimSessionOptions(out_dir=tmp_path_factory.mktemp("loader"), duration_s=2.5,
                                             profile="wheel_loader_20t", pattern="two_lever", cameras=1, width=160,
                                             height=120, fps=10.0))


@pytest.fixture(scope="module")
def ros2_bag(sim_episode: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ros2") / "episode.mcap"
    episode_to_ros2_mcap(sim_episode, out)
    return out


def expected_topics(reader: EpisodeReader) -> dict[str, int]:
    topics = {ros_topic(info.path): info.samples for info in reader.streams
              if info.kind in ("control", "joystick", "camera", "can")}
    topics[ros_topic("events")] = len(reader.events())
    topics["/excap/joint_states"] = len(joint_timeline(reader))
    return topics


def test_counts_per_topic_equal_the_episode_rows(sim_episode: Path, ros2_bag: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        expected = expected_topics(reader)
    assert mcap_files.topic_counts(ros2_bag) == expected
    assert mcap_files.header(ros2_bag).profile == "ros2"
    summary = mcap_files.summary(ros2_bag)
    assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    assert {c.compression for c in summary.chunk_indexes} == {"zstd"}
    types = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
    assert types["/excap/can/can0"] == "can_msgs/msg/Frame"
    assert types["/excap/joy/operator"] == "sensor_msgs/msg/Joy"
    assert types["/excap/cameras/side/compressed"] == "sensor_msgs/msg/CompressedImage"
    assert types["/excap/commands"] == types["/excap/joint_states"] == "sensor_msgs/msg/JointState"
    assert types["/excap/events"] == "diagnostic_msgs/msg/DiagnosticArray"


def test_messages_decode_to_the_recorded_values(sim_episode: Path, ros2_bag: Path) -> None:
    with EpisodeReader(sim_episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        can = reader.stream("can/can0")
        can_rows = {c: can.column(c) for c in ("t_ns", "t_device_ns", "id", "extended", "dlc", "data")}
        joy = reader.stream("joystick/operator")
        joy_rows = {c: joy.column(c) for c in ("t_ns", "t_device_ns", "axes", "buttons")}
        side = reader.camera("side")
        frames = [side.jpeg(i) for i in range(len(side))]
        names, commands = reader.command_names, reader.stream("control").column("commands")
    frames_read = list(mcap_files.decoded(ros2_bag, ["/excap/can/can0"]))
    assert [m.log_time for _, _, m, _ in frames_read] == (can_rows["t_ns"] + offset).tolist()
    assert [msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec for *_, msg in frames_read] == \
        can_rows["t_device_ns"].tolist()
    assert [msg.id for *_, msg in frames_read] == can_rows["id"].tolist()
    assert [msg.is_extended for *_, msg in frames_read] == can_rows["extended"].tolist()
    assert [bytes(msg.data) for *_, msg in frames_read] == [bytes(d) for d in can_rows["data"]]
    sticks = [msg for *_, msg in mcap_files.decoded(ros2_bag, ["/excap/joy/operator"])]
    assert np.array_equal(np.array([m.axes for m in sticks], np.float32), joy_rows["axes"])
    assert [list(m.buttons) for m in sticks] == joy_rows["buttons"].tolist()
    assert [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in sticks] == \
        joy_rows["t_device_ns"].tolist()
    images = [msg for *_, msg in mcap_files.decoded(ros2_bag, ["/excap/cameras/side/compressed"])]
    assert [bytes(m.data) for m in images] == frames and {m.format for m in images} == {"jpeg"}
    control = [msg for *_, msg in mcap_files.decoded(ros2_bag, ["/excap/commands"])]
    assert {tuple(m.name) for m in control} == {tuple(names)}
    assert np.array_equal(np.array([m.position for m in control], np.float32), commands)


def test_an_independent_reader_reads_the_bag(sim_episode: Path, ros2_bag: Path) -> None:
    """rosbags (its own MCAP and CDR implementation) opens the file without a metadata.yaml."""
    with EpisodeReader(sim_episode) as reader:
        expected = expected_topics(reader)
        kinds = [event.kind for event in reader.events()]
    with AnyReader([ros2_bag]) as bag:
        assert {c.topic: c.msgcount for c in bag.connections} == expected
        events = [c for c in bag.connections if c.topic == "/excap/events"]
        decoded = [bag.deserialize(raw, conn.msgtype) for conn, _, raw in bag.messages(connections=events)]
        joints = [c for c in bag.connections if c.topic == "/excap/joint_states"]
        last = [bag.deserialize(raw, conn.msgtype) for conn, _, raw in bag.messages(connections=joints)][-1]
    assert [array.status[0].name for array in decoded] == kinds
    assert list(last.name) == ["swing", "boom", "arm", "bucket"]
    assert all(math.isfinite(p) for p in last.position)


def episode_equal(first: Path, second: Path) -> None:
    """Every stream, column, sample, timestamp, stream attribute and root attribute of two episodes equal."""
    with EpisodeReader(first) as a, EpisodeReader(second) as b:
        assert a.metadata == b.metadata
        assert [s.path for s in a.streams] == [s.path for s in b.streams]
        for info in a.streams:
            sa, sb = a.stream(info.path), b.stream(info.path)
            assert sa.info == sb.info
            assert sa.attrs == sb.attrs, info.path
            for column in info.columns:
                left, right = sa.block(column, 0, len(sa)), sb.block(column, 0, len(sb))
                if sa.cell_kind(column) == "bytes":
                    assert [bytes(x) for x in left] == [bytes(x) for x in right], f"{info.path}/{column}"
                else:
                    assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), f"{info.path}/{column}"
                    assert left.dtype == right.dtype
            for column in ("axes", "buttons", "commands"):
                if column in info.columns:
                    assert sa.names(column) == sb.names(column)


@pytest.mark.parametrize("kind", ["excavator", "wheel_loader"])
def test_round_trip_keeps_every_sample_and_timestamp(kind: str, sim_episode: Path, loader_episode: Path,
                                                     tmp_path: Path) -> None:
    episode = sim_episode if kind == "excavator" else loader_episode
    with EpisodeReader(episode) as reader:
        cameras = ", ".join(f"{c.split('/')[1]}: /excap/cameras/{c.split('/')[1]}/compressed"
                            for c in reader.paths("camera"))
        profile = reader.metadata["profile"]
    bag = tmp_path / "bag.mcap"
    episode_to_ros2_mcap(episode, bag)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(MAPPING.format(profile=profile, cameras=cameras))
    back = tmp_path / "back.h5"
    report = bag_to_episode(bag, mapping, back)
    assert validate_episode(back) == []
    assert report.unmapped == {"/excap/joint_states": "sensor_msgs/msg/JointState"}
    episode_equal(episode, back)
    if kind == "wheel_loader":
        joints = [msg for *_, msg in mcap_files.decoded(bag, ["/excap/joint_states"])]
        assert joints and list(joints[-1].name) == ["articulation", "lift", "tilt"]
