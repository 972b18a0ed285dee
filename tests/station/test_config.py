from pathlib import Path

import pytest
import yaml

from excap.core.errors import ConfigError
from excap.station.config import load_station_config
from tests.support.paths import REPO

EXAMPLES = REPO / "examples"


def test_sim_example_is_valid():
    config = load_station_config(EXAMPLES / "station_sim.yaml")
    assert config.simulated_machine and config.command.bus == "can0"
    assert config.axis_inputs["right_y"].device == "operator"
    assert config.out_dir == (EXAMPLES / "../episodes")


def test_loader_example_is_valid():
    config = load_station_config(EXAMPLES / "station_loader.yaml")
    assert config.profile.kind == "wheel_loader"
    assert config.joysticks[1].type == "j1939" and config.joysticks[0].periodic


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_mistake_is_reported_in_one_pass_with_file_and_key(tmp_path):
    data = yaml.safe_load((EXAMPLES / "station_sim.yaml").read_text())
    data["machine"]["pattern"] = "diagonal"
    del data["machine"]["id"]
    data["joysticks"].append({"name": "pedals", "type": "serial", "axes": ["a"], "buttons": [], "baud": 9600})
    data["joysticks"].append({"name": "wheel", "type": "usb", "axes": [], "buttons": []})
    data["inputs"]["axes"]["left_x"] = "nobody.x"
    data["inputs"]["axes"]["left_y"] = "operator.nothing"
    data["can"].append({"name": "can1", "interface": "not-a-bus", "channel": "x"})
    data["cameras"] = [{"name": "cab", "source": "/dev/video0", "zoom": 2}]
    data["command"]["bus"] = "can9"
    data["colour"] = "yellow"
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_station_config(path)
    lines = str(caught.value).splitlines()
    expected = [
        "colour: unknown key",
        "machine.pattern: profile excavator_20t has no pattern 'diagonal'",
        "machine.id: missing",
        "joysticks[1].baud: unknown key for a serial joystick",
        "joysticks[1].port: missing",
        "joysticks[2].type: unknown joystick type 'usb'",
        "inputs.axes.left_x: no joystick named 'nobody'",
        "inputs.axes.left_y: joystick 'operator' has no axis 'nothing'",
        "can[1].interface: unknown python-can interface 'not-a-bus'",
        "cameras[0].zoom: unknown key",
        "command.bus: no can entry named 'can9'",
    ]
    for fragment in expected:
        assert any(line.startswith(f"{path}: ") and fragment in line for line in lines), (fragment, lines)
    assert len(lines) == len(expected)


def test_foreign_and_broken_files(tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("station: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_station_config(bad_yaml)
    foreign = write(tmp_path, {"hello": "world"})
    with pytest.raises(ConfigError, match="not an excap station config"):
        load_station_config(foreign)
    with pytest.raises(ConfigError, match="no such file"):
        load_station_config(tmp_path / "missing.yaml")
