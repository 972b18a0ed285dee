"""Every number of a station config is finite and within its range: one line per mistake, naming the key."""

import copy
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from excap.core.errors import ConfigError
from excap.drivers.camera.opencv_camera import CameraConfig
from excap.drivers.machine.command_link import CommandLinkConfig
from excap.drivers.machine.profiles import load_profile
from excap.station.config import load_station_config
from excap.station.json_schema import committed_path, json_schema, json_schema_text
from tests.support.commands import excap_command
from tests.support.config_docs import BAD_VALUES, NumericKey, accepted_by, numeric_keys, place
from tests.support.paths import REPO

AXES = ["left_x", "left_y", "right_x", "right_y", "travel_left", "travel_right"]

FULL_STATION: dict[str, Any] = {
    "schema": "excap.station", "schema_version": 1,
    "station": {"id": "full", "out_dir": "eps"},
    "machine": {"profile": "excavator_20t", "pattern": "iso", "id": "exc-1"},
    "session": {"operator": "op-1", "site": "s", "task": "t", "certification_policy": "refuse"},
    "joysticks": [
        {"name": "left", "type": "hid", "device": "/dev/input/by-id/usb-left-event-joystick", "axes": ["ABS_X"],
         "buttons": ["BTN_TRIGGER"], "axis_ranges": {"ABS_X": [-512, 511]}, "default_range": [-32768, 32767],
         "poll_interval_s": 0.1, "reconnect_interval_s": 0.5},
        {"name": "panel", "type": "serial", "port": "/dev/ttyUSB0", "protocol": "ascii", "baudrate": 38400,
         "button_count": 8, "read_timeout_s": 0.05, "stale_after_s": 0.1, "reconnect_interval_s": 0.5,
         "axes": AXES, "buttons": ["enable", "horn", "marker"]},
        {"name": "grip", "type": "j1939", "bus": "can0", "source_address": 0x2C, "use_ejm": True,
         "stale_after_s": 0.1, "axes": ["x", "y"], "buttons": []},
    ],
    "inputs": {"axes": {axis: f"panel.{axis}" for axis in AXES},
               "buttons": {button: f"panel.{button}" for button in ("enable", "horn", "marker")}},
    "can": [{"name": "can0", "interface": "virtual", "channel": "excap-full", "bitrate": 250000, "fd": True,
             "data_bitrate": 2000000, "filters": [{"can_id": 0x100, "can_mask": 0x7FF, "extended": False}],
             "reconnect_interval_s": 1.0}],
    "cameras": [{"name": "cab", "source": 0, "width": 640, "height": 480, "fps": 30, "backend": 200,
                 "reconnect_interval_s": 1, "stale_after_s": 2, "max_grab_failures": 3, "stream_timeout_s": 5}],
    "command": {"bus": "can0", "rate_hz": 50, "stale_timeout_ms": 100},
}

STATION_KEYS = numeric_keys(json_schema("station"))


def write(tmp_path: Path, data: dict[str, Any], name: str = "station.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_full_document_is_valid_and_holds_every_numeric_key(tmp_path):
    config = load_station_config(write(tmp_path, FULL_STATION))
    assert [j.type for j in config.joysticks] == ["hid", "serial", "j1939"]
    assert config.command.rate_hz == 50.0 and config.command.stale_timeout_s == pytest.approx(0.1)
    assert config.cameras[0].fps == 30.0 and config.cans[0].filters[0].can_mask == 0x7FF
    assert len(STATION_KEYS) >= 30
    for key in STATION_KEYS:
        place(copy.deepcopy(FULL_STATION), key)  # raises NotInDocument if a new key has no place here yet


@pytest.mark.parametrize("key", STATION_KEYS, ids=str)
def test_every_numeric_key_refuses_nan_infinity_and_out_of_range_values(tmp_path: Path, key: NumericKey) -> None:
    refused = 0
    for value in BAD_VALUES:
        if accepted_by(key.schema, value):
            continue
        document = copy.deepcopy(FULL_STATION)
        container, item, shown = place(document, key)
        container[item] = value
        path = write(tmp_path, document)
        with pytest.raises(ConfigError) as caught:
            load_station_config(path)
        lines = str(caught.value).splitlines()
        assert len(lines) == 1, (value, lines)
        assert lines[0].startswith(f"{path}: {shown}: must "), (value, lines)
        refused += 1
    assert refused >= 4  # NaN, both infinities and 1e400 at least


def test_a_camera_rate_that_is_not_a_number(tmp_path):
    document = copy.deepcopy(FULL_STATION)
    document["cameras"][0]["fps"] = "fast"
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_station_config(path)
    assert str(caught.value) == f"{path}: cameras[0].fps: must be a finite number above 0 and at most 240 (got 'fast')"


@pytest.mark.parametrize(("yaml_value", "message"), [
    (".nan", "command.stale_timeout_ms: must be a finite number between 10 and 1000 (got nan)"),
    (".inf", "command.stale_timeout_ms: must be a finite number between 10 and 1000 (got inf)"),
    ("1e400", "command.stale_timeout_ms: must be a finite number between 10 and 1000 (got 1e400)"),
])
def test_check_config_prints_one_line_per_mistake_and_exits_1(tmp_path, yaml_value, message):
    text = (REPO / "examples/station_sim.yaml").read_text()
    text = text.replace("stale_timeout_ms: 100", f"stale_timeout_ms: {yaml_value}")
    text = text.replace("rate_hz: 50,", "rate_hz: 1e9,")
    path = tmp_path / "station.yaml"
    path.write_text(text)
    result = subprocess.run(excap_command("check-config", str(path)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr == ""
    assert result.stdout.splitlines() == [f"{path}: command.rate_hz: must be a finite number between 1 and 200 "
                                          "(got 1e9)", f"{path}: {message}"]


def test_cross_field_mistakes_are_one_line_each_and_do_not_cascade(tmp_path):
    document = copy.deepcopy(FULL_STATION)
    document["can"][0]["bitrate"] = math.nan  # the entry fails; what names it is not reported again
    document["joysticks"][1]["baudrate"] = "fast"  # likewise the inputs naming `panel`
    document["cameras"].append({"name": "cab", "source": "sim:side"})
    document["joysticks"][2]["bus"] = "can7"
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_station_config(path)
    assert str(caught.value).splitlines() == [
        f"{path}: joysticks[1].baudrate: must be a whole number between 300 and 4000000 (got 'fast')",
        f"{path}: can[0].bitrate: must be a whole number between 5000 and 1000000 (got nan)",
        f"{path}: joysticks[2].bus: no can entry named 'can7'",
        f"{path}: cameras[1].name: camera names must be unique ('cab' repeated)",
        f"{path}: cameras[1].source: a simulated camera needs machine.simulated: true",
    ]


def test_the_simulated_machine_is_the_profiles_kind_and_its_cameras_are_that_machines_views(tmp_path):
    data = yaml.safe_load((REPO / "examples/station_sim.yaml").read_text())
    data["machine"]["profile"] = "wheel_loader_20t"
    data["machine"]["pattern"] = "single_lever"
    data["joysticks"] = []
    data["inputs"] = {}
    data["cameras"] = [{"name": "cab", "source": "sim:front"}, {"name": "back", "source": "sim:rear"}]
    config = load_station_config(write(tmp_path, data))
    assert config.simulated_machine and config.profile.kind == "wheel_loader"
    data["cameras"] = [{"name": "side", "source": "sim:side"}]
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.source: unknown simulated view 'side' of the simulated "
                                          r"wheel_loader \(known: front, rear\)"):
        load_station_config(write(tmp_path, data))
    profile = yaml.safe_load(load_profile("wheel_loader_20t").source.read_text())
    profile["kind"] = "dozer"
    data["machine"]["profile"] = str(write(tmp_path, profile, "dozer.yaml"))
    data["cameras"] = []
    with pytest.raises(ConfigError, match=r"machine\.simulated: no simulated machine of kind 'dozer' \(profile "
                                          r"dozer; simulated: excavator, wheel_loader\)"):
        load_station_config(write(tmp_path, data))


def test_profile_mistakes_are_reported_under_machine_profile(tmp_path):
    profile = yaml.safe_load(load_profile().source.read_text())
    profile["cab_joysticks"]["rate_hz"] = math.inf
    profile_path = write(tmp_path, profile, "machine.yaml")
    data = yaml.safe_load((REPO / "examples/station_sim.yaml").read_text())
    data["machine"]["profile"] = str(profile_path)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_station_config(path)
    assert str(caught.value) == (f"{path}: machine.profile: {profile_path}: cab_joysticks.rate_hz: must be a "
                                 "finite number between 1 and 200 (got inf)")


# -- JSON Schema ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["station", "profile"])
def test_committed_json_schemas_are_what_the_models_generate(kind):
    assert committed_path(kind).read_text(encoding="utf-8") == json_schema_text(kind), (
        f"regenerate with: excap check-config --json-schema {kind} > {committed_path(kind).relative_to(REPO)}")


def test_cli_prints_the_json_schema():
    result = subprocess.run(excap_command("check-config", "--json-schema", "profile"), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and json.loads(result.stdout) == json_schema("profile")


def test_examples_and_profiles_pass_the_json_schemas_an_editor_uses():
    station = jsonschema.Draft202012Validator(json.loads(committed_path("station").read_text()))
    profile = jsonschema.Draft202012Validator(json.loads(committed_path("profile").read_text()))
    for path in [*sorted((REPO / "examples").glob("*.yaml")), REPO / "launch/excap_station.yaml"]:
        assert list(station.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    assert list(station.iter_errors(FULL_STATION)) == []
    for path in sorted((REPO / "schemas/profiles").glob("*.yaml")):
        assert list(profile.iter_errors(yaml.safe_load(path.read_text()))) == [], path
    bad = copy.deepcopy(FULL_STATION)
    bad["command"]["rate_hz"] = 1e9
    assert [e.json_path for e in station.iter_errors(bad)] == ["$.command.rate_hz"]


# -- the runtime objects check too ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -5.0, 1e9])
def test_command_link_config_refuses_a_rate_or_timeout_out_of_range(value):
    with pytest.raises(ConfigError, match=r"^command rate_hz: must be a finite number between 1 and 200"):
        CommandLinkConfig(rate_hz=value)
    with pytest.raises(ConfigError, match=r"^command stale_timeout_s: must be a finite number between 0\.01 and 1"):
        CommandLinkConfig(stale_timeout_s=value)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("fps", "fast", "camera cab: fps: must be a finite number above 0 and at most 240 (got 'fast')"),
    ("fps", math.nan, "camera cab: fps: must be a finite number above 0 and at most 240 (got nan)"),
    ("width", 100000, "camera cab: width: must be a whole number between 16 and 8192 (got 100000)"),
    ("stale_after_s", math.inf, "camera cab: stale_after_s: must be a finite number between 0.1 and 60 (got inf)"),
])
def test_camera_config_refuses_bad_values(field, value, message):
    with pytest.raises(ConfigError) as caught:
        CameraConfig(name="cab", source="/dev/video0", **{field: value})
    assert str(caught.value) == message


def _range_text(schema: dict[str, Any]) -> str | None:
    for alternative in schema.get("anyOf", [schema]):
        if "maximum" in alternative:
            low = alternative.get("minimum", alternative.get("exclusiveMinimum"))
            return f"{low} .. {alternative['maximum']}"
    return None


def test_station_md_documents_the_range_of_every_numeric_key():
    text = (REPO / "schemas/station.md").read_text()
    written_otherwise = {"0 .. 536870911": "0 .. 0x1FFFFFFF", "-2147483648 .. 2147483647": "-2147483648 to 2147483647",
                         "0 .. 240": "above 0 and at most 240"}
    missing = []
    for key in [*STATION_KEYS, *numeric_keys(json_schema("profile"))]:
        wanted = _range_text(key.schema)
        if wanted is not None and written_otherwise.get(wanted, wanted) not in text:
            missing.append(f"{key}: {wanted}")
    assert missing == []


@pytest.mark.parametrize("args", [
    ["record", "--sim", "--fps", "nan", "--duration", "1"],
    ["record", "--sim", "--jpeg-quality", "0", "--duration", "1"],
    ["bench", "safety", "--rate", "inf", "--losses", "1"],
])
def test_numbers_from_the_command_line_are_checked_too(tmp_path, args):
    result = subprocess.run(excap_command(*args, *(["--out", str(tmp_path)] if args[0] == "record" else [])),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("excap: error: ")
    assert " must be " in result.stderr and list(tmp_path.iterdir()) == []


def test_stream_names_cannot_reach_outside_their_group(tmp_path):
    document = copy.deepcopy(FULL_STATION)
    document["joysticks"][0]["name"] = "../control"
    document["cameras"][0]["name"] = "cab/inner"
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as caught:
        load_station_config(path)
    assert str(caught.value).splitlines() == [
        f"{path}: joysticks[0].name: must be a stream name like 'cab' (letters, digits, _ . -), not '../control'",
        f"{path}: cameras[0].name: must be a stream name like 'cab' (letters, digits, _ . -), not 'cab/inner'",
    ]
