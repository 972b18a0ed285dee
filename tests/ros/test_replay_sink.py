# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""The ROS 2 replay sink's messages as it prepares them, without the middleware: the machine's joint states every
20 ms of recorded time, on every pass of a looping replay."""

import itertools
from pathlib import Path

from tests.support.requirements import require_ros

require_ros()  # before rclpy is imported: skips the module, or fails it in CI

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import JointState

from excap.episode.reader import EpisodeReader
from excap.replay.timeline import Timeline
from excap.ros.replay_sink import JOINT_STATES, RosSink


def test_joint_states_come_every_20_ms_and_the_same_on_every_pass_of_a_loop(sim_episode: Path) -> None:
    sink = RosSink()
    with EpisodeReader(sim_episode) as reader:
        paths = sink.paths(reader)
        decoded = [p for p in paths if "/decoded/" in p]
        timeline = Timeline(reader, decoded)
        passes = []
        for _ in range(2):  # what --loop does: the same samples from the start again
            joints = [deserialize_message(data, JointState) for sample in timeline
                      for key, data in sink.prepare(sample) if key == JOINT_STATES]
            passes.append(joints)
    first, second = passes
    assert len(first) > 10 and len(second) == len(first)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in first]
    assert all(later - earlier >= 20_000_000 for earlier, later in itertools.pairwise(stamps))
    assert len(first[-1].name) >= 3  # the machine's joints, all known by then
    assert second == first  # a pass starts afresh: the same joints at the same stamps, not the last pass's joints
