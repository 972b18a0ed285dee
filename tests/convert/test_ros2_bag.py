"""`excap convert BAG.mcap --to episode --map MAPPING.yaml`: a ROS 2 bag written by mcap-ros2-support's writer as a
robot's recorder would (Joy, CompressedImage, raw rgb8 Image, CAN frames, JointState commands, and a topic the
mapping does not name) becomes a valid episode; mapping mistakes are one line."""

import subprocess
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from mcap_ros2.writer import Writer

from excap.convert.bag_mapping import load_mapping
from excap.convert.ros2_bag import bag_to_episode
from excap.convert.ros2_msgs import CAN_FRAME, COMPRESSED_IMAGE, DEFINITIONS, IMAGE, JOINT_STATE, JOY
from excap.core.errors import ConfigError, ExcapError
from excap.drivers.can.j1939 import J1939Id
from excap.episode.reader import EpisodeReader
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.fuzzing import fuzz_settings, tried

START_NS = 1_790_000_000_000_000_000  # 2026-09-21, UTC
STEPS = 40  # 20 Hz for 2 s
EEC1 = J1939Id(priority=3, pgn=0xF004, source_address=0x00).arbitration_id()
MAPPING = """profile: excavator_20t
metadata: {operator_id: op-17, site: yard-2, machine_id: exc-07}
joysticks: {left: /robot/joy}
cameras: {front: /robot/front/image_raw/compressed, rear: /robot/rear/image_raw}
can: {can0: /robot/can0/rx}
commands: /robot/commands
"""


def stamp(t_ns: int) -> dict[str, int]:
    return {"sec": t_ns // 1_000_000_000, "nanosec": t_ns % 1_000_000_000}


@dataclass(frozen=True)
class RobotBag:
    path: Path
    mapping: Path
    device_offset_ns: int = 12_345  # header stamps: the device clock, a little off the log time


def write_robot_bag(folder: Path) -> RobotBag:
    """Two seconds of a teleoperated machine as ROS 2 messages, log times in UTC."""
    bag = RobotBag(folder / "robot.mcap", folder / "mapping.yaml")
    bag.mapping.write_text(MAPPING)
    gradient = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (48, 1, 3))
    with bag.path.open("wb") as handle, Writer(handle) as writer:
        schemas = {name: writer.register_msgdef(name, DEFINITIONS[name])
                   for name in (JOY, COMPRESSED_IMAGE, IMAGE, CAN_FRAME, JOINT_STATE)}
        for step in range(STEPS):
            t_ns = START_NS + step * 50_000_000
            header = {"stamp": stamp(t_ns - bag.device_offset_ns), "frame_id": "cab"}
            writer.write_message("/robot/joy", schemas[JOY], {
                "header": header, "axes": [step / STEPS, -0.5, 0.25], "buttons": [step % 2, 0]}, log_time=t_ns)
            jpeg = cv2.imencode(".jpg", np.roll(gradient, step, axis=1))[1].tobytes()
            writer.write_message("/robot/front/image_raw/compressed", schemas[COMPRESSED_IMAGE], {
                "header": header, "format": "jpeg", "data": jpeg}, log_time=t_ns + 1)
            writer.write_message("/robot/rear/image_raw", schemas[IMAGE], {
                "header": header, "height": 48, "width": 64, "encoding": "rgb8", "is_bigendian": 0, "step": 64 * 3,
                "data": gradient.tobytes()}, log_time=t_ns + 2)
            rpm = int((1000 + step) / 0.125)
            writer.write_message("/robot/can0/rx", schemas[CAN_FRAME], {
                "header": header, "id": EEC1, "is_rtr": False, "is_extended": True, "is_error": False, "dlc": 8,
                "data": bytes([0xF0, 0x7D, 0x7D, rpm & 0xFF, rpm >> 8, 0x00, 0xF0, 0x7D])}, log_time=t_ns + 3)
            writer.write_message("/robot/commands", schemas[JOINT_STATE], {
                "header": header, "name": ["boom", "arm", "not_a_function"], "position": [0.5, -0.25, 9.0],
                "velocity": [], "effort": []}, log_time=t_ns + 4)
            writer.write_message("/robot/joint_states", schemas[JOINT_STATE], {
                "header": header, "name": ["boom"], "position": [0.1], "velocity": [], "effort": []}, log_time=t_ns + 5)
    return bag


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory: pytest.TempPathFactory) -> RobotBag:
    return write_robot_bag(tmp_path_factory.mktemp("robot"))


@pytest.fixture(scope="module")
def imported(robot_bag: RobotBag, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "robot.h5"
    report = bag_to_episode(robot_bag.path, robot_bag.mapping, out)
    assert report.unmapped == {"/robot/joint_states": "sensor_msgs/msg/JointState"}
    return out


def test_bag_becomes_a_valid_episode_with_every_message(imported: Path) -> None:
    assert validate_episode(imported) == []
    with EpisodeReader(imported) as reader:
        counts = {info.path: info.samples for info in reader.streams}
        assert counts["joystick/left"] == counts["cameras/front"] == counts["cameras/rear"] == STEPS
        assert counts["can/can0"] == counts["can/can0/decoded/EEC1"] == counts["control"] == STEPS
        assert reader.metadata["clock_offset_ns"] == 0 and reader.metadata["machine_kind"] == "excavator"
        assert (reader.metadata["operator_id"], reader.metadata["site"]) == ("op-17", "yard-2")
        assert [event.kind for event in reader.events()] == ["start", "stop"]


def test_log_time_is_t_ns_and_header_stamp_is_device_time(robot_bag: RobotBag, imported: Path) -> None:
    times = START_NS + np.arange(STEPS, dtype=np.int64) * 50_000_000
    with EpisodeReader(imported) as reader:
        joy = reader.stream("joystick/left")
        assert joy.t_ns.tolist() == times.tolist()
        assert joy.column("t_device_ns").tolist() == (times - robot_bag.device_offset_ns).tolist()
        assert reader.stream("cameras/front").t_ns.tolist() == (times + 1).tolist()
        assert reader.stream("can/can0").t_ns.tolist() == (times + 3).tolist()
        assert reader.start_t_ns == int(times[0]) and reader.metadata["end_t_ns"] == int(times[-1]) + 4
        assert joy.column("axes")[5].tolist() == pytest.approx([5 / STEPS, -0.5, 0.25])


def test_images_commands_and_can_signals(imported: Path) -> None:
    with EpisodeReader(imported) as reader:
        rear = reader.camera("rear")
        image = rear.image(0)
        assert image.shape == (48, 64, 3) and rear.attrs["width"] == 64
        assert abs(int(image[10, 40, 0]) - 160) < 8  # rgb8 gradient encoded as JPEG, read back as BGR
        control = reader.stream("control")
        names = control.names("commands")
        row = control.column("commands")[0]
        assert row[names.index("boom")] == 0.5 and row[names.index("arm")] == -0.25
        assert np.isnan(row[names.index("bucket")])
        speed = reader.stream("can/can0/decoded/EEC1").column("EngSpeed")
        assert speed[:3].tolist() == [1000.0, 1001.0, 1002.0]


@pytest.mark.parametrize(("text", "message"), [
    ("joysticks: {left: /robot/joy}\n", "profile: required"),
    ("profile: excavator_20t\ncolour: red\n", "colour: unknown key"),
    ("profile: excavator_20t\ncameras: {front: 'not a topic!'}\n", "cameras.front: expected a topic name"),
    ("profile: excavator_20t\ncan: {can0: /a}\ncommands: /a\n", "commands: topic /a is already mapped by can.can0"),
    ("profile: excavator_20t\n", "maps no topic"),
    ("- a list\n", "expected a mapping"),
    ("profile: excavator_20t\nmetadata: {colour: red}\njoysticks: {a: /j}\n",
     "metadata: unknown episode metadata colour"),
])
def test_mapping_mistakes_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_mapping(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_wrong_type_for_a_stream_is_refused_and_nothing_written(robot_bag: RobotBag, tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("profile: excavator_20t\njoysticks: {left: /robot/can0/rx}\n")
    out = tmp_path / "out.h5"
    with pytest.raises(ConfigError, match="/robot/can0/rx: is can_msgs/msg/Frame, a joystick topic must be"):
        bag_to_episode(robot_bag.path, mapping, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mapping.yaml"]


def test_not_an_mcap_file_is_one_error(robot_bag: RobotBag, tmp_path: Path) -> None:
    fake = tmp_path / "fake.mcap"
    fake.write_bytes(b"\x89MCAP0\r\n" + b"\0" * 64)
    with pytest.raises(ExcapError, match="not a readable MCAP file"):
        bag_to_episode(fake, robot_bag.mapping, tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()


def test_cli_lists_unmapped_topics_and_refuses_bad_input(robot_bag: RobotBag, tmp_path: Path) -> None:
    out = tmp_path / "cli.h5"
    done = subprocess.run(excap_command("convert", str(robot_bag.path), "--to", "episode", "--map",
                                        str(robot_bag.mapping), "--out", str(out)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}\n" and "not mapped: /robot/joint_states (sensor_msgs/msg/JointState)" in done.stderr
    missing_map = subprocess.run(excap_command("convert", str(robot_bag.path), "--to", "episode"),
                                 capture_output=True, text=True, timeout=120)
    assert missing_map.returncode == 2 and missing_map.stderr.startswith("excap: error: --to episode needs --map")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profile: excavator_20t\nmetadata: [1, 2]\njoysticks: {left: /robot/joy}\n")
    refused = subprocess.run(excap_command("convert", str(robot_bag.path), "--to", "episode", "--map", str(bad),
                                           "--out", str(tmp_path / "x.h5")), capture_output=True, text=True,
                             timeout=120)
    assert refused.returncode == 2
    assert refused.stderr == f"excap: error: {bad}: metadata: expected a mapping of episode metadata keys to text\n"
    assert not (tmp_path / "x.h5").exists()


@fuzz_settings(40)
@given(cuts=st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=6),
       truncate=st.booleans())
@example(cuts=[(2175, 0)], truncate=False)  # a stamp out of int64's range, found when written with the last rows
def test_damaged_bags_are_one_error_line_or_an_episode(robot_bag: RobotBag, tmp_path_factory: pytest.TempPathFactory,
                                                       cuts: list[tuple[int, int]], truncate: bool) -> None:
    tried("damaged ros2 bag")
    folder = tmp_path_factory.mktemp("damaged")
    data = bytearray(robot_bag.path.read_bytes())
    for position, value in cuts:
        data[position % len(data)] = value
    if truncate:
        data = data[: cuts[0][0] % len(data)]
    bag = folder / "damaged.mcap"
    bag.write_bytes(bytes(data))
    out = folder / "out.h5"
    try:
        bag_to_episode(bag, robot_bag.mapping, out)
    except ExcapError as exc:
        assert "\n" not in str(exc) and not out.exists()
    else:
        assert validate_episode(out) == []
    assert sorted(p.name for p in folder.iterdir()) in (["damaged.mcap"], ["damaged.mcap", "out.h5"])
