"""Launch files, package.xml, station files and message conversions: no ROS middleware needed."""

import ast
import dataclasses
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml

from excap.core.errors import ConfigError
from excap.drivers.sim.machines import SIM_MACHINES
from excap.ros.config import NodeSettings, node_station, station_defaults
from excap.ros.convert import commands_from_joint_state, image_to_bgr, joints_from_signals, joints_of_state, joy_row
from excap.schemas.machine_kinds import MACHINE_KINDS
from excap.station.config import load_station_config
from excap.station.ros_topics import parse_topic_entry

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
NODE_PARAMETERS = {"station_config", *NodeSettings.parameter_names()}


def console_scripts() -> dict[str, str]:
    text = (REPO / "setup.py").read_text()
    return dict(re.findall(r'"([\w-]+) = ([\w.:]+)"', text))


def _literal_keys(node: ast.AST) -> list[str]:
    return [k.value for k in node.keys if isinstance(k, ast.Constant)] if isinstance(node, ast.Dict) else []


def launch_nodes_by_ast(path: Path) -> list[dict[str, object]]:
    """Every `Node(...)` call in a launch file: package, executable, parameter names."""
    found = []
    for call in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "Node"):
            continue
        kwargs = {kw.arg: kw.value for kw in call.keywords}
        params: list[str] = []
        for item in getattr(kwargs.get("parameters"), "elts", []):
            params += _literal_keys(item)
        found.append({"package": kwargs["package"].value, "executable": kwargs["executable"].value,  # type: ignore[attr-defined]
                      "parameters": params})
    return found


def launch_nodes(path: Path) -> list[dict[str, object]]:
    """Through generate_launch_description() when `launch_ros` imports, else by reading the file."""
    try:
        import importlib.util

        from launch_ros.actions import Node  # noqa: F401
    except ImportError:
        return launch_nodes_by_ast(path)
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    description = module.generate_launch_description()
    found = []
    for entity in description.entities:
        if type(entity).__name__ == "Node":
            params = [key for group in entity._Node__parameters for key in getattr(group, "keys", lambda: [])()]
            found.append({"package": entity.node_package, "executable": entity.node_executable,
                          "parameters": [p if isinstance(p, str) else "".join(str(x) for x in p) for p in params]})
    return found


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_references_exist(path: Path) -> None:
    nodes = launch_nodes(path)
    assert nodes, f"{path.name}: no Node action"
    scripts = console_scripts()
    for node in nodes:
        assert node["package"] == "excap"
        assert node["executable"] in scripts, f"{node['executable']} is not a console script"
        module, _, func = scripts[node["executable"]].partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, f"{module} is not importable"
        source = Path(spec.origin)
        assert source.is_relative_to(REPO), f"{module} comes from {source}, not this repository"
        assert f"def {func}(" in source.read_text()
        unknown = set(node["parameters"]) - NODE_PARAMETERS  # type: ignore[arg-type]
        assert not unknown, f"{path.name}: parameters the node does not declare: {unknown}"
    for config in re.findall(r'"(launch/[\w.-]+\.yaml)"|"launch", "([\w.-]+\.yaml)"', path.read_text()):
        name = next(c for c in config if c)
        assert (REPO / "launch" / Path(name).name).is_file()


def test_launch_files_exist() -> None:
    assert {p.name for p in LAUNCH_FILES} == {"excap_sim.launch.py", "excap_station.launch.py"}


def test_example_station_config_is_a_regular_station_config_with_a_ros_section() -> None:
    config = load_station_config(REPO / "launch" / "excap_station.yaml")
    assert config.simulated_machine and config.joysticks[0].type == "sim" and config.cameras
    assert config.ros is not None and config.ros.joy_topics and config.ros.image_topics
    assert config.ros.compressed_image_topics and config.ros.publish_joint_states
    values = station_defaults(config)
    assert set(values) <= set(NodeSettings.parameter_names())
    assert values["machine_id"] == "sim-excavator-01" and values["joy_topics"] == ["pad=/station/joy"]


SIM_STATION = (REPO / "examples" / "station_sim.yaml").read_text()


def _station(tmp_path: Path, **sections: object) -> Path:
    data = yaml.safe_load(SIM_STATION)
    data.update(sections)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_ros_section_problems_are_listed(tmp_path: Path) -> None:
    path = _station(tmp_path, ros={"foo": 1, "joy_topics": "/joy", "image_topics": ["operator=/x", "a="],
                                   "command_topic": "/cmd", "publish": {"joy": "yes", "bar": True},
                                   "publish_prefix": "excap"},
                    cameras=[{"name": "cam", "source": "sim:front"}])
    with pytest.raises(ConfigError) as info:
        load_station_config(path)
    text = str(info.value)
    for expected in ("ros.foo: unknown key", "ros.joy_topics: must be a list", "ros.image_topics[1]:",
                     "ros.command_topic: the station's joysticks drive /control", "ros.publish.joy: must be true",
                     "ros.publish.bar: unknown key", "ros.publish_prefix:",
                     "cameras[0].source: unknown simulated view"):
        assert expected in text, expected
    clash = _station(tmp_path, ros={"joy_topics": ["operator=/joy"]})
    with pytest.raises(ConfigError, match="both record to /joystick/operator"):
        load_station_config(clash)
    not_simulated = _station(tmp_path, machine={"profile": "excavator_20t", "id": "m", "simulated": False},
                             joysticks=[], inputs={}, cameras=[{"name": "cam", "source": "sim:side"}])
    with pytest.raises(ConfigError, match=r"needs machine\.simulated: true"):
        load_station_config(not_simulated)


def test_the_old_ros_station_format_is_not_a_station_config(tmp_path: Path) -> None:
    old = tmp_path / "o.yaml"
    old.write_text("schema: excap.ros_station\njoy_topics: [/joy]\n")
    with pytest.raises(ConfigError, match="not an excap station config"):
        load_station_config(old)


def test_ros_section_defaults_and_relative_out_dir(tmp_path: Path) -> None:
    config = load_station_config(_station(tmp_path, station={"id": "s", "out_dir": "eps"},
                                          ros={"command_topic": "/cmd"}, joysticks=[], inputs={}, command={}))
    assert config.out_dir == tmp_path / "eps"
    assert config.ros is not None and config.ros.command_topic == "/cmd" and config.ros.publish_prefix == "/excap"
    assert config.ros.publish_joy and config.ros.publish_diagnostics and config.ros.joy_topics == ()
    assert load_station_config(_station(tmp_path)).ros is None


def test_node_station_applies_parameters_or_builds_the_simulated_station(tmp_path: Path) -> None:
    config = load_station_config(_station(tmp_path))
    settings = NodeSettings(**(NodeSettings.defaults() | station_defaults(config) | {"task": "trench",
                                                                                     "operator": ""}))
    station = node_station(settings, config, tmp_path / "out")
    assert station.out_dir == tmp_path / "out" and station.session["task"] == "trench"
    assert station.session["operator"] == "sim-operator" and station.joysticks == config.joysticks
    with pytest.raises(ConfigError, match="sim:=true"):
        node_station(dataclasses.replace(settings, sim=True), config, tmp_path)
    with pytest.raises(ConfigError, match=r"machine\.profile"):
        node_station(dataclasses.replace(settings, profile="wheel_loader_20t"), config, tmp_path)
    sim = node_station(NodeSettings(sim=True, cameras=3, width=160, height=120), None, tmp_path)
    assert sim.simulated_machine and [j.type for j in sim.joysticks] == ["sim"]
    assert [c.name for c in sim.cameras] == ["side", "top", "side2"] and sim.cameras[0].source == "sim:side"
    assert set(sim.axis_inputs) == set(sim.profile.axes) and sim.command.bus == "can0"
    bare = node_station(NodeSettings(), None, tmp_path)
    assert not bare.joysticks and not bare.cans and not bare.simulated_machine


def test_joints_from_decoded_inclinometers() -> None:
    excavator = MACHINE_KINDS["excavator"].joints
    names, positions = joints_from_signals({"BoomSSI2": {"PitchAngleExRange": 30.0},
                                            "ArmSSI2": {"PitchAngleExRange": -60.0},
                                            "SwingStatus": {"SwingAngle": 90.0}}, excavator)
    assert names == ["swing", "boom", "arm"]
    assert positions == pytest.approx([np.pi / 2, np.pi / 6, -np.pi / 2])
    assert joints_from_signals({}, excavator) == ([], [])


def test_joints_from_decoded_loader_signals() -> None:
    loader = MACHINE_KINDS["wheel_loader"].joints
    signals = {"LoaderArticulation": {"ArticulationAngle": -20.0, "ArticulationRate": 3.0},
               "LoaderLinkage": {"LiftAngle": 15.0, "BucketAngle": float("nan")},
               "BoomSSI2": {"PitchAngleExRange": 30.0}}
    names, positions = joints_from_signals(signals, loader)
    assert names == ["articulation", "lift"]  # a NaN (not available) bucket angle is left out
    assert positions == pytest.approx([-np.pi / 9, np.pi / 12])
    signals["LoaderLinkage"]["BucketAngle"] = -45.0
    assert joints_from_signals(signals, loader) == (["articulation", "lift", "tilt"],
                                                    pytest.approx([-np.pi / 9, np.pi / 12, -np.pi / 4]))


def test_simulated_joints_of_each_kind_start_with_the_joints_its_can_traffic_reports() -> None:
    for kind, entry in SIM_MACHINES.items():
        can_joints = MACHINE_KINDS[kind].joint_names
        assert tuple(j.name for j in entry.joints)[:len(can_joints)] == can_joints, kind
        state = entry.model().state
        names, positions, velocities = joints_of_state(state, entry.joints)
        assert len(names) == len(positions) == len(velocities) == len(entry.joints)
        assert all(np.isfinite(positions)) and all(np.isfinite(velocities))


def test_package_xml() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "excap"
    assert root.find("export").findtext("build_type") == "ament_python"  # type: ignore[union-attr]
    depends = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "std_msgs", "sensor_msgs", "std_srvs", "diagnostic_msgs", "python3-numpy", "python3-opencv",
            "python3-h5py"} <= depends
    assert (REPO / "resource" / "excap").is_file()


def test_share_files_install_launch_files_and_package_xml() -> None:
    namespace: dict[str, object] = {"__file__": str(REPO / "setup.py")}
    source = (REPO / "setup.py").read_text().split("\nsetup(")[0]
    exec(compile(source, "setup.py", "exec"), namespace)
    entries = namespace["share_files"]()  # type: ignore[operator]
    installed = {f for _, files in entries for f in files}
    assert "package.xml" in installed and "resource/excap" in installed
    for path in LAUNCH_FILES:
        assert f"launch/{path.name}" in installed
    assert "launch/excap_station.yaml" in installed
    assert ("share/excap/launch", ["launch/excap_sim.launch.py"]) in entries


@pytest.mark.parametrize(("entry", "image", "expected"), [
    ("/joy", False, ("joy", "/joy")),
    ("left=/station/joy_left", False, ("left", "/station/joy_left")),
    ("/cab/front/image_raw", True, ("cab_front", "/cab/front/image_raw")),
    ("/cam/image_raw/compressed", True, ("cam", "/cam/image_raw/compressed")),
    ("a b=/x", False, ("a_b", "/x")),
])
def test_parse_topic_entry(entry: str, image: bool, expected: tuple[str, str]) -> None:
    assert parse_topic_entry(entry, image=image) == expected


def _image_msg(array: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> SimpleNamespace:
    height, width = array.shape[:2]
    rows = array.reshape(height, -1)
    if array.dtype == np.uint16:
        rows = rows.astype(">u2" if bigendian else "<u2")
    raw = rows.view(np.uint8).reshape(height, -1)
    padded = np.zeros((height, raw.shape[1] + pad), np.uint8)
    padded[:, : raw.shape[1]] = raw
    return SimpleNamespace(height=height, width=width, encoding=encoding, step=padded.shape[1],
                           is_bigendian=int(bigendian), data=padded.tobytes())


def test_image_to_bgr_encodings() -> None:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    assert np.array_equal(image_to_bgr(_image_msg(bgr, "bgr8", pad=3)), bgr)
    assert np.array_equal(image_to_bgr(_image_msg(np.ascontiguousarray(bgr[..., ::-1]), "rgb8", pad=1)), bgr)
    rgba = np.dstack([bgr[..., ::-1], np.full((6, 5), 7, np.uint8)])
    assert np.array_equal(image_to_bgr(_image_msg(rgba, "rgba8")), bgr)
    mono = bgr[..., 0].copy()
    assert np.array_equal(image_to_bgr(_image_msg(mono, "mono8", pad=2)), mono)
    mono16 = mono.astype(np.uint16) << 8 | 0x55
    for big in (False, True):
        assert np.array_equal(image_to_bgr(_image_msg(mono16, "mono16", bigendian=big)), mono)
    with pytest.raises(ValueError, match="unsupported"):
        image_to_bgr(_image_msg(mono, "bayer_rggb8"))
    short = _image_msg(bgr, "bgr8")
    short.data = short.data[:-1]
    with pytest.raises(ValueError, match="too short"):
        image_to_bgr(short)
    ok, _ = cv2.imencode(".jpg", image_to_bgr(_image_msg(bgr, "bgr8", pad=3)))
    assert ok


def test_joy_row_and_commands() -> None:
    msg = SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=3, nanosec=5)), axes=[0.5, -1.0],
                          buttons=[1, 0, 300, -2])
    assert joy_row(42, msg) == (42, 3_000_000_005, [0.5, -1.0], [1, 0, 255, 0])
    values, unknown = commands_from_joint_state(["boom", "arm", "bucket"], ["arm", "foo", "boom"], [0.2, 1.0, -0.4])
    assert values[:2] == [pytest.approx(-0.4), pytest.approx(0.2)] and np.isnan(values[2]) and unknown == ["foo"]


def test_node_command_line() -> None:
    import argparse

    from excap.cli.node import add_node_parser, node_arguments

    parser = argparse.ArgumentParser()
    add_node_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["node", "--sim", "--out", "/tmp/e", "--ros-args", "-p", "operator:=op-1"])
    assert node_arguments(args) == ["--ros-args", "-p", "sim:=true", "-p", f"out_dir:={Path('/tmp/e').resolve()}",
                                    "--ros-args", "-p", "operator:=op-1"]
    loader = parser.parse_args(["node", "--sim", "--profile", "wheel_loader_20t"])
    assert node_arguments(loader) == ["--ros-args", "-p", "sim:=true", "-p", "profile:=wheel_loader_20t"]
