# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""`excap replay --ros` against the live node: the same topics and types, every message to a subscriber that
was already running (--wait-subscribers), joint states and diagnostics, and /clock at its rate."""

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from excap.episode.reader import EpisodeReader
from tests.support.report import record
from tests.support.requirements import require_ros
from tests.support.waiting import wait_for

require_ros()

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CompressedImage, JointState, Joy
from std_msgs.msg import String

from excap.ros import topics
from excap.ros.convert import joints_from_signals, stamp_to_ns
from excap.schemas.machine_kinds import MACHINE_KINDS
from tests.support.ros_node import TIMEOUT, Client, finish, spawn

pytestmark = pytest.mark.slow
RELIABLE = QoSProfile(depth=5000, reliability=ReliabilityPolicy.RELIABLE)
END_S = 2.0
CLOCK_HZ = 1e9 / topics.CLOCK_PERIOD_NS
INFRASTRUCTURE = ("/rosout", "/parameter_events")


def published_by(client: Client, node: str) -> set[tuple[str, str]]:
    """(topic, type) of every topic `node` publishes, but the node's own ~/ topics and ROS's infrastructure."""
    if node not in client.node.get_node_names():
        return set()
    try:
        found = client.node.get_publisher_names_and_types_by_node(node, "/")
    except Exception:  # the node went away between the two calls
        return set()
    return {(name, kind) for name, types in found for kind in types
            if name not in INFRASTRUCTURE and not name.startswith(f"/{node}/")}


def test_replay_publishes_the_topics_and_types_the_node_published_while_recording(tmp_path: Path) -> None:
    client = Client()
    node = spawn("-m", "excap.ros.node", "--ros-args", "-p", "sim:=true", "-p", f"out_dir:={tmp_path}",
                 "-p", "cameras:=1", "-p", "width:=160", "-p", "height:=120", "-p", "fps:=10.0",
                 "-p", "auto_start:=true")
    replay = None
    try:
        expected = {topics.joy("/excap", "operator"), topics.commands("/excap"), topics.joint_states("/excap"),
                    topics.camera("/excap", "side"), topics.diagnostics()}
        wanted = {(t.name, t.type) for t in expected}
        wait_for(lambda: wanted <= published_by(client, "excap_recorder"), TIMEOUT, message="node publishers")
        live = published_by(client, "excap_recorder")
        client.subscribe(JointState, "/excap/commands")
        wait_for(lambda: len(client.messages["/excap/commands"]) > 30, TIMEOUT, message="a while of recording")
        episode = Path(client.call("stop"))
        finish(node)
        replay = spawn("-m", "excap", "replay", str(episode), "--ros", "--paused")
        wait_for(lambda: live <= published_by(client, "excap_replay"), TIMEOUT,
                 message=f"replay publishers: {sorted(live - published_by(client, 'excap_replay'))}")
        extra = published_by(client, "excap_replay") - live
        assert {name for name, _ in extra} <= {"/excap/events"} | {n for n, _ in extra if "/can/" in n}, extra
    finally:
        for process in (node, replay):
            if process is not None and process.poll() is None:
                finish(process)
        client.close()


def subscriptions(client: Client) -> dict[str, type]:
    wanted = {"/excap/joy/operator": Joy, "/excap/commands": JointState, "/excap/cameras/side/compressed":
              CompressedImage, "/excap/can/can0/decoded/EEC1": JointState, "/excap/events": String,
              "/excap/joint_states": JointState, "/diagnostics": DiagnosticArray}
    for topic, msg_type in wanted.items():
        client.subscribe(msg_type, topic, RELIABLE)
    return wanted


def test_a_subscriber_already_running_gets_every_message_and_clock_keeps_its_rate(sim_episode: Path) -> None:
    client = Client("excap_replay")
    arrivals: list[tuple[float, int]] = []
    client.node.create_subscription(Clock, "/clock", lambda m: arrivals.append((time.monotonic(),
                                                                               stamp_to_ns(m.clock))),
                                    qos_profile_sensor_data)
    wanted = subscriptions(client)
    count = len(wanted) + 1
    replay = spawn("-m", "excap", "replay", str(sim_episode), "--ros", "--ros-reliable", "--clock",
                   "--end", str(END_S), "--wait-subscribers", str(count))
    try:
        replay.wait(TIMEOUT)
        output = finish(replay)
    finally:
        client_messages = client.messages
        client.close()
    assert replay.returncode == 0, output
    summary = json.loads(output.strip().splitlines()[-1])
    with EpisodeReader(sim_episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        end = reader.start_t_ns + int(END_S * 1e9)
        for path, topic in (("joystick/operator", "/excap/joy/operator"), ("control", "/excap/commands"),
                            ("cameras/side", "/excap/cameras/side/compressed"),
                            ("can/can0/decoded/EEC1", "/excap/can/can0/decoded/EEC1")):
            t_ns = reader.stream(path).t_ns
            rows = t_ns[t_ns <= end]
            received = [stamp_to_ns(m.header.stamp) - offset for m in client_messages[topic]]
            assert received == rows.tolist(), (topic, len(received), len(rows))
        recorded_events = [e for e in reader.events() if e.t_ns <= end]
        events = [json.loads(m.data) for m in client_messages["/excap/events"]]
        assert [(e["t_ns"], e["kind"]) for e in events] == [(e.t_ns, e.kind) for e in recorded_events]
        assert len(events) == summary["per_stream"]["events"]

        joints = client_messages["/excap/joint_states"]
        order = ["swing", "boom", "arm", "bucket"]  # joints appear as their CAN messages are first seen
        assert joints and all(list(j.name) == [n for n in order if n in j.name] for j in joints)
        last = joints[-1]
        assert list(last.name) == order
        stamp = stamp_to_ns(last.header.stamp) - offset
        signals = {}
        for message in ("BoomSSI2", "ArmSSI2", "BucketSSI2", "SwingStatus"):
            stream = reader.stream(f"can/can0/decoded/{message}")
            index = int(np.searchsorted(stream.t_ns, stamp, side="right")) - 1
            row = stream[index]
            signals[message] = {k: float(v) for k, v in row.items() if k not in ("t_ns", "source_address")}
        names, positions = joints_from_signals(signals, MACHINE_KINDS["excavator"].joints)
        assert names == order and list(last.position) == pytest.approx(positions)
        stamps = [stamp_to_ns(j.header.stamp) for j in joints]
        assert min(np.diff(stamps)) >= topics.JOINT_STATE_PERIOD_S * 1e9

    statuses = {s.name: s for d in client_messages["/diagnostics"] for s in d.status}
    assert {"excap replay", "excap replay: control", "excap replay: cameras/side"} <= set(statuses)

    # /clock: counted over the middle of the replay (the first and last 0.2 s left out)
    first, last_arrival = arrivals[0][0], arrivals[-1][0]
    middle = [a for a in arrivals if first + 0.2 <= a[0] <= last_arrival - 0.2]
    span = middle[-1][0] - middle[0][0]
    rate = (len(middle) - 1) / span
    record("replay /clock", "rate_hz", round(rate, 2))
    record("replay /clock", "messages", len(arrivals))
    assert abs(rate - CLOCK_HZ) <= 0.05 * CLOCK_HZ, rate
    clock_span_s = (middle[-1][1] - middle[0][1]) / 1e9
    assert abs(clock_span_s - span) <= 0.05 * span + 0.02, (clock_span_s, span)
    assert [c for _, c in arrivals] == sorted(c for _, c in arrivals)


def test_waiting_for_subscribers_that_never_come_is_one_error_line(sim_episode: Path) -> None:
    replay = spawn("-m", "excap", "replay", str(sim_episode), "--ros", "--wait-subscribers", "50",
                   "--wait-subscribers-timeout", "0.5")
    output = finish_waiting(replay)
    assert replay.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("excap: error:")]
    assert len(errors) == 1 and "--wait-subscribers 50: only" in errors[0], output


def finish_waiting(process: Any) -> str:
    try:
        process.wait(TIMEOUT)
    finally:
        output = finish(process)
    return output

