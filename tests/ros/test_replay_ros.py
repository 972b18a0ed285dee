# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""`excap replay --ros` over the real middleware: the replay runs in its own process, this process
subscribes as a node, starts it through ~/resume, and checks every message against the episode."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from excap.episode.reader import EpisodeReader
from tests.support.paths import REPO
from tests.support.requirements import require_ros
from tests.support.waiting import wait_for

require_ros()  # before rclpy is imported: skips the module, or fails it in CI

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, JointState, Joy
from std_msgs.msg import String

from excap.ros.convert import stamp_to_ns
from tests.support.ros_node import Client

pytestmark = pytest.mark.slow
TIMEOUT = 25.0
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
END_S = 2.5
TOPICS = {"/excap/joy/operator": Joy, "/excap/commands": JointState, "/excap/cameras/side/compressed":
          CompressedImage, "/excap/can/can0/decoded/EEC1": JointState, "/excap/events": String, "/clock": Clock}


def states(client: Client) -> list[Any]:
    return client.messages["/excap_replay/state"]


def subscribe(client: Client, msg_type: type, topic: str) -> None:
    # /clock is best effort, as in ROS; the rest reliable
    client.subscribe(msg_type, topic, qos_profile_sensor_data if topic == "/clock" else RELIABLE)


@pytest.fixture
def subscriber() -> Iterator[Client]:
    c = Client("excap_replay", services=("pause", "resume"), client_name="excap_replay_test")
    yield c
    c.close()


def spawn_replay(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "excap", "replay", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 20) -> str:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait(10)
    return process.communicate()[0]


def by_stamp(messages: list[Any], offset: int) -> dict[int, Any]:
    return {stamp_to_ns(m.header.stamp) - offset: m for m in messages}


def test_replay_republishes_the_episode_with_recorded_stamps(sim_episode: Path, subscriber: Client) -> None:
    for topic, msg_type in TOPICS.items():
        subscribe(subscriber, msg_type, topic)
    process = spawn_replay(str(sim_episode), "--ros", "--ros-reliable", "--clock", "--paused", "--end", str(END_S))
    try:
        wait_for(lambda: all(subscriber.node.count_publishers(t) for t in TOPICS), TIMEOUT,
                 message="replay publishers")
        wait_for(lambda: states(subscriber), TIMEOUT, message="the replay's state")
        assert json.loads(states(subscriber)[0].data) == {"paused": True}  # started with --paused
        response = subscriber.request("resume")
        assert response.success and response.message == "resumed"
        assert not subscriber.request("resume").success
        wait_for(lambda: subscriber.messages["/excap/commands"], TIMEOUT, message="first commands")
        paused = subscriber.request("pause")
        assert paused.success and paused.message == "paused"
        wait_for(lambda: json.loads(states(subscriber)[-1].data) == {"paused": True}, TIMEOUT, message="paused state")
        assert subscriber.request("resume").success
        output = finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["pauses"] == 2 and not summary["stopped"]
    with EpisodeReader(sim_episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        end = reader.start_t_ns + int(END_S * 1e9)
        wait_for(lambda: len(subscriber.messages["/excap/commands"]) >= 0.9 * int(
            (reader.stream("control").t_ns <= end).sum()), 5, message="commands delivered")

        def check(path: str, topic: str, compare: Any) -> None:
            stream = reader.stream(path)
            rows = int((stream.t_ns <= end).sum())
            received = by_stamp(subscriber.messages[topic], offset)
            assert len(received) >= 0.9 * rows, (topic, len(received), rows)
            index = {int(t): i for i, t in enumerate(stream.t_ns[:rows].tolist())}
            for stamp, msg in received.items():
                assert stamp in index, (topic, stamp)
                compare(stream[index[stamp]], msg)

        def joy(row: dict[str, Any], msg: Joy) -> None:
            assert list(msg.axes) == row["axes"].tolist() and list(msg.buttons) == row["buttons"].tolist()
            assert msg.header.frame_id == "operator"

        def commands(row: dict[str, Any], msg: JointState) -> None:
            assert list(msg.name) == reader.command_names
            assert list(msg.position) == row["commands"].astype(np.float64).tolist()
            assert msg.header.frame_id == ("enabled" if row["enabled"] else "disabled")

        def image(row: dict[str, Any], msg: CompressedImage) -> None:
            assert msg.format == "jpeg" and bytes(msg.data) == row["frames"]

        def engine(row: dict[str, Any], msg: JointState) -> None:
            values = dict(zip(msg.name, msg.position, strict=True))
            assert values["EngSpeed"] == row["EngSpeed"] and msg.header.frame_id == "can0"

        check("joystick/operator", "/excap/joy/operator", joy)
        check("control", "/excap/commands", commands)
        check("cameras/side", "/excap/cameras/side/compressed", image)
        check("can/can0/decoded/EEC1", "/excap/can/can0/decoded/EEC1", engine)
        assert cv2.imdecode(np.frombuffer(bytes(subscriber.messages["/excap/cameras/side/compressed"][0].data),
                                          np.uint8), cv2.IMREAD_COLOR).shape == (240, 320, 3)
        events = [json.loads(m.data) for m in subscriber.messages["/excap/events"]]
        recorded = [e for e in reader.events() if e.t_ns <= end]
        assert [(e["t_ns"], e["kind"], e["detail"]) for e in events] == [(e.t_ns, e.kind, e.detail) for e in recorded]
        assert all(e["stamp_ns"] == e["t_ns"] + offset for e in events)
        clocks = [stamp_to_ns(m.clock) - offset for m in subscriber.messages["/clock"]]
        assert clocks and clocks == sorted(clocks) and reader.start_t_ns <= clocks[0] and clocks[-1] <= end


def test_times_beyond_a_ros_stamp_are_one_error_line() -> None:
    from excap.core.errors import EpisodeError
    from excap.ros.replay_sink import stamp_fields

    assert stamp_fields(1_700_000_000_123_456_789, "monotonic", 0) == (1_700_000_000, 123_456_789)
    assert stamp_fields(5, "utc", 1_000_000_000) == (1, 5)
    for t_ns in (2**62, -(2**62)):
        with pytest.raises(EpisodeError, match="beyond what a ROS time stamp holds"):
            stamp_fields(t_ns, "monotonic", 0)
