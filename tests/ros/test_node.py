# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""The excap_recorder node over the real middleware: a peer process publishes, the node process records,
this process calls its services; the episodes are checked sample by sample."""

import json
import uuid
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from excap.episode.validation import validate_episode
from excap.people.admin import add_operator, certify_operator
from tests.support import ros_peer as peer
from tests.support.requirements import require_ros
from tests.support.waiting import wait_for

require_ros()  # before rclpy is imported: skips the module, or fails it in CI

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CompressedImage, JointState, Joy
from std_msgs.msg import String

from tests.support.ros_node import LATCHED, TIMEOUT, Client, finish, spawn

pytestmark = pytest.mark.slow


def diag_samples(c: Client, name: str) -> int:
    for array in reversed(c.messages["/diagnostics"]):
        for status in array.status:
            if status.name == name:
                return int({kv.key: kv.value for kv in status.values}["samples"])
    return 0


def test_records_joy_and_image_topics_from_another_process(tmp_path: Path, client: Client) -> None:
    publisher = spawn(str(Path(peer.__file__)))
    node = spawn("-m", "excap.ros.node", "--ros-args", "-p", f"out_dir:={tmp_path}",
                 "-p", "joy_topics:=['pad=/peer/joy']", "-p", "image_topics:=['/peer/camera/image_raw']",
                 "-p", "operator:=op-17", "-p", "task:=trench")
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        client.subscribe(DiagnosticArray, "/diagnostics", QoSProfile(depth=20))
        wait_for(lambda: client.state().get("recording") is False, TIMEOUT, message="latched idle state")
        started = client.call("start")
        assert started.endswith(".h5")
        wait_for(lambda: client.state().get("recording"), TIMEOUT, message="recording state")
        # the counts include messages from before the episode: take them from diagnostics published after it started
        seen = len(client.messages["/diagnostics"])
        wait_for(lambda: len(client.messages["/diagnostics"]) > seen, TIMEOUT, message="diagnostics while recording")
        joy_before, camera_before = diag_samples(client, "excap: joystick/pad"), diag_samples(
            client, "excap: cameras/peer_camera")
        wait_for(lambda: diag_samples(client, "excap: joystick/pad") >= joy_before + 40
                 and diag_samples(client, "excap: cameras/peer_camera") >= camera_before + 40, TIMEOUT,
                 message="samples")
        assert client.call("mark") == "marker 1"
        client.call("mark_success")
        path = Path(client.call("stop"))
        assert path == Path(started) and path.is_file()
        client.call("stop", expect=False)
        wait_for(lambda: client.state().get("last", {}) and client.state()["last"]["path"] == str(path), TIMEOUT,
                 message="state after stop")
    finally:
        node_output = finish(node)
        finish(publisher)
    assert "Traceback" not in node_output, node_output
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        assert f.attrs["operator_id"] == "op-17" and f.attrs["task"] == "trench" and f.attrs["outcome"] == "success"
        start, end = f.attrs["start_t_ns"], f.attrs["end_t_ns"]
        joy = f["joystick/pad"]
        assert joy.attrs["backend"] == "ros2" and joy.attrs["device_name"] == "/peer/joy"
        t_ns, t_dev, axes, buttons = (joy[k][()] for k in ("t_ns", "t_device_ns", "axes", "buttons"))
        assert len(t_ns) >= 40
        assert np.all(np.diff(t_ns) >= 0) and start <= t_ns[0] and t_ns[-1] <= end
        indices = [peer.index_of(int(t)) for t in t_dev]
        assert indices == sorted(set(indices))
        for i, t, a, b in zip(indices, t_dev, axes, buttons, strict=True):
            assert t == peer.stamp_ns(i)
            assert a.tolist() == peer.expected_axes(i)
            assert b.tolist() == peer.expected_buttons(i)
        camera = f["cameras/peer_camera"]
        assert (camera.attrs["width"], camera.attrs["height"]) == (peer.WIDTH, peer.HEIGHT)
        frames, frame_dev = camera["frames"][()], camera["t_device_ns"][()]
        assert len(frames) >= 40
        for jpeg, t in zip(frames, frame_dev, strict=True):
            i = peer.index_of(int(t))
            assert int(t) == peer.stamp_ns(i)
            decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            error = np.abs(decoded.astype(int) - peer.expected_image(i).astype(int))
            assert error.mean() < 4 and np.percentile(error, 99) < 24, (i, error.mean())
        kinds = [k.decode() if isinstance(k, bytes) else k for k in f["events/kind"][()]]
        assert "marker" in kinds and kinds[0] == "start" and kinds[-1] == "stop"


def test_sim_mode_publishes_what_it_drives_and_discards(tmp_path: Path, client: Client) -> None:
    node = spawn("-m", "excap.ros.node", "--ros-args", "-p", "sim:=true", "-p", f"out_dir:={tmp_path}",
                 "-p", "cameras:=1", "-p", "width:=160", "-p", "height:=120", "-p", "fps:=10.0")
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        client.subscribe(DiagnosticArray, "/diagnostics", QoSProfile(depth=20))
        topics = ((Joy, "/excap/joy/operator"), (JointState, "/excap/commands"),
                  (JointState, "/excap/joint_states"), (CompressedImage, "/excap/cameras/side/compressed"))
        for msg_type, topic in topics:
            client.subscribe(msg_type, topic)
        wait_for(lambda: all(client.messages[t] for _, t in topics) and client.messages["/diagnostics"],
                 TIMEOUT, message="sim topics")
        joints = client.messages["/excap/joint_states"][-1]
        assert list(joints.name) == ["swing", "boom", "arm", "bucket"] and len(joints.position) == 4
        assert "boom" in list(client.messages["/excap/commands"][-1].name)
        frame = client.messages["/excap/cameras/side/compressed"][-1]
        assert cv2.imdecode(np.frombuffer(bytes(frame.data), np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        names = {s.name for s in client.messages["/diagnostics"][-1].status}
        assert {"excap: disk", "excap: joystick/operator", "excap: control", "excap: cameras/side",
                "excap: device joystick/operator", "excap: device machine"} <= names
        disk = next(s for s in client.messages["/diagnostics"][-1].status if s.name == "excap: disk")
        assert int({kv.key: kv.value for kv in disk.values}["free_bytes"]) > 0

        discarded = client.call("start")
        client.call("start", expect=False)
        assert client.call("discard").startswith("discarded ")
        assert not Path(discarded).exists()

        started = client.call("start")
        wait_for(lambda: diag_samples(client, "excap: can/can0") > 200 and client.state().get("recording"),
                 TIMEOUT, message="CAN frames")
        count = len(client.messages["/excap/commands"])
        wait_for(lambda: len(client.messages["/excap/commands"]) > count + 50, TIMEOUT, message="a second of commands")
        client.call("mark_failure")
        path = Path(client.call("stop"))
        assert path == Path(started)
    finally:
        output = finish(node)
    assert "Traceback" not in output, output
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        assert f.attrs["outcome"] == "failure"
        for stream in ("joystick/operator", "control", "cameras/side", "can/can0"):
            assert len(f[stream]["t_ns"]) > 5, stream
    assert sorted(p.name for p in tmp_path.glob("*.h5")) == [path.name]


STATION = """
schema: excap.station
schema_version: 1
station: {id: ros-test, out_dir: episodes}
machine: {profile: excavator_20t, pattern: sae, id: exc-ros, simulated: true}
session: {operator: op-5, task: grading}
joysticks:
  - {name: console, type: sim, axes: [lx, ly, rx, ry, tl, tr], buttons: [enable, horn, marker]}
inputs:
  axes: {left_x: console.lx, left_y: console.ly, right_x: console.rx, right_y: console.ry,
         travel_left: console.tl, travel_right: console.tr}
  buttons: {enable: console.enable}
can:
  - {name: can0, interface: virtual, channel: excap-ros-station-test}
cameras:
  - {name: cab, source: "sim:top", width: 160, height: 120, fps: 10}
command: {bus: can0}
ros:
  joy_topics: [pad=/peer/joy]
  publish_prefix: /station
  publish: {cameras: true, diagnostics: true}
"""


def test_station_config_node_publishes_its_devices_and_records_them_with_topics(tmp_path: Path,
                                                                                client: Client) -> None:
    config = tmp_path / "station.yaml"
    config.write_text(STATION)
    registry = tmp_path / "episodes" / ".excap" / "operators.yaml"  # policy refuse: op-5 must be certified
    add_operator(registry, "op-5")
    certify_operator(registry, "op-5", "excavator-cpcs-a59", ["excavator"], None, ref="A59-5")
    publisher = spawn(str(Path(peer.__file__)))
    node = spawn("-m", "excap", "node", "--config", str(config), "--ros-args", "-p", "task:=trench")
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        client.subscribe(DiagnosticArray, "/diagnostics", QoSProfile(depth=20))
        topics = ((Joy, "/station/joy/console"), (JointState, "/station/commands"),
                  (JointState, "/station/joint_states"), (CompressedImage, "/station/cameras/cab/compressed"))
        for msg_type, topic in topics:
            client.subscribe(msg_type, topic)
        wait_for(lambda: all(client.messages[t] for _, t in topics), TIMEOUT, message="station topics")
        wait_for(lambda: client.state().get("recording") is False, TIMEOUT, message="idle state")
        assert client.state()["station"] == str(config) and client.state()["sim"] is True
        joy = client.messages["/station/joy/console"][-1]
        assert len(joy.axes) == 6 and len(joy.buttons) == 3 and joy.header.frame_id == "console"
        assert list(client.messages["/station/joint_states"][-1].name) == ["swing", "boom", "arm", "bucket"]
        assert "bucket" in list(client.messages["/station/commands"][-1].name)

        started = client.call("start")
        wait_for(lambda: diag_samples(client, "excap: joystick/pad") > 0, TIMEOUT, message="peer joy")
        count = len(client.messages["/station/commands"])
        wait_for(lambda: len(client.messages["/station/commands"]) > count + 50, TIMEOUT, message="commands")
        assert client.call("mark") == "marker 1"
        path = Path(client.call("stop"))
        assert path == Path(started) and path.parent == tmp_path / "episodes"
        count = len(client.messages["/station/commands"])
        wait_for(lambda: len(client.messages["/station/commands"]) > count + 10, TIMEOUT,
                 message="commands between episodes")
    finally:
        output = finish(node)
        finish(publisher)
    assert "Traceback" not in output, output
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        assert f.attrs["operator_id"] == "op-5" and f.attrs["task"] == "trench" and f.attrs["machine_id"] == "exc-ros"
        assert "A59-5" in f.attrs["certification"]
        assert f.attrs["control_pattern"] == "sae"
        for stream in ("joystick/console", "joystick/pad", "control", "cameras/cab", "can/can0",
                       "can/can0/decoded/BJM1"):
            assert len(f[stream]["t_ns"]) > 0, stream
        assert len(f["control/t_ns"]) > 40
        kinds = [k.decode() if isinstance(k, bytes) else k for k in f["events/kind"][()]]
        assert "marker" in kinds
    assert sorted(p.name for p in (tmp_path / "episodes").glob("*.h5")) == [path.name]


def test_sim_wheel_loader_publishes_the_loader_joints_and_records_a_loader_episode(tmp_path: Path,
                                                                                   client: Client) -> None:
    """`node --sim` with the loader profile: the joints of the loader (from the machines registry), its machine
    functions as commands, its cameras; the episode is a wheel loader episode."""
    node = spawn("-m", "excap", "node", "--sim", "--profile", "wheel_loader_20t", "--out", str(tmp_path),
                 "--ros-args", "-p", "cameras:=1", "-p", "width:=160", "-p", "height:=120", "-p", "fps:=10.0")
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        topics = ((JointState, "/excap/commands"), (JointState, "/excap/joint_states"),
                  (CompressedImage, "/excap/cameras/front/compressed"))
        for msg_type, topic in topics:
            client.subscribe(msg_type, topic)
        wait_for(lambda: all(client.messages[t] for _, t in topics), TIMEOUT, message="loader topics")
        started = client.call("start")
        joints = client.messages["/excap/joint_states"]
        count = len(joints)
        wait_for(lambda: len(joints) > count + 100, TIMEOUT, message="two seconds of joint states")
        path = Path(client.call("stop"))
        stopped = len(joints)
        assert path == Path(started)
    finally:
        output = finish(node)
    assert "Traceback" not in output and "AttributeError" not in output, output
    published = list(joints)
    assert {tuple(m.name) for m in published} == {("articulation", "lift", "tilt", "wheels")}
    assert all(len(m.position) == 4 and len(m.velocity) == 4 for m in published)
    assert list(client.messages["/excap/commands"][-1].name) == ["lift", "tilt", "steer", "throttle", "brake",
                                                                 "direction"]
    positions = np.array([m.position for m in published])
    assert np.all(np.isfinite(positions)) and np.all(np.abs(positions[:, :3]) < np.pi / 2)
    assert np.ptp(positions[:, :3], axis=0).max() > 0.01  # the scripted operator moves the loader
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        assert f.attrs["machine_kind"] == "wheel_loader" and set(f["cameras"]) == {"front"}
        lift_deg = f["can/can0/decoded/LoaderLinkage/LiftAngle"][()]
    # the published lift angles lie within those the loader's controller reported on CAN while recording
    low, high = np.radians(lift_deg.min()) - 0.05, np.radians(lift_deg.max()) + 0.05
    during = positions[count:stopped, 1]
    assert np.all((during >= low) & (during <= high))


def test_start_waits_for_the_required_devices_and_start_anyway_records_the_override(tmp_path: Path,
                                                                                    client: Client) -> None:
    config = tmp_path / "station.yaml"
    silent = f"excap-ros-silent-{uuid.uuid4().hex}"  # a bus nobody sends on
    config.write_text(STATION.replace("cameras:\n", f"  - {{name: can1, interface: virtual, channel: {silent}}}\n"
                                                    "cameras:\n", 1))
    registry = tmp_path / "episodes" / ".excap" / "operators.yaml"
    add_operator(registry, "op-5")
    certify_operator(registry, "op-5", "excavator-cpcs-a59", ["excavator"], None, ref="A59-5")
    node = spawn("-m", "excap", "node", "--config", str(config), "--ros-args", "-p", "ready_wait_s:=0.5")
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        wait_for(lambda: client.state().get("recording") is False, TIMEOUT, message="idle state")
        refused = client.call("start", expect=False)
        assert refused == "not ready: can can1 (no frames yet)"
        assert client.state().get("recording") is False and not list((tmp_path / "episodes").glob("*.h5"))
        path = Path(client.call("start_anyway"))
        assert Path(client.call("stop")) == path
    finally:
        output = finish(node)
    assert "Traceback" not in output, output
    assert validate_episode(path) == []
    with h5py.File(path) as f:
        kinds = [k.decode() if isinstance(k, bytes) else k for k in f["events/kind"][()]]
        details = [json.loads(d) for d in f["events/detail"][()]]
    overrides = [d for k, d in zip(kinds, details, strict=True) if k == "start_override"]
    assert overrides == [{"devices": ["can/can1"], "reasons": ["no frames yet"], "source": "ros", "by": "op-5"}]
