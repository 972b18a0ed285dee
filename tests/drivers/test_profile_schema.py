"""Machine profiles: every number finite and in range, every cross-reference checked, one line per mistake."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from capture_node.config_json_schema import json_schema
from capture_node.errors import ConfigError
from drivers.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout
from drivers.profiles import load_profile
from tests.support.config_docs import BAD_VALUES, NumericKey, accepted_by, numeric_keys, place


def full_profile() -> dict[str, Any]:
    """The excavator profile with every station action bound (so every numeric key has a place)."""
    data = yaml.safe_load(load_profile("excavator_20t").source.read_text())
    data["bindings"]["start"] = {"buttons": ["horn", "marker"], "hold_s": 5.0}
    data["bindings"]["stop"] = {"buttons": ["horn"], "hold_s": 2.5}
    return data


PROFILE_KEYS = numeric_keys(json_schema("profile"))


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "machine.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_full_profile_loads(tmp_path):
    profile = load_profile(write(tmp_path, full_profile()))
    assert {b.action for b in profile.station_bindings} == {"start", "stop", "start_stop", "success", "failure",
                                                            "discard", "marker"}


@pytest.mark.parametrize("key", PROFILE_KEYS, ids=str)
def test_every_numeric_key_refuses_nan_infinity_and_out_of_range_values(tmp_path: Path, key: NumericKey) -> None:
    refused = 0
    for value in BAD_VALUES:
        if accepted_by(key.schema, value):
            continue
        document = full_profile()
        container, item, shown = place(document, key)
        container[item] = value
        path = write(tmp_path, document)
        with pytest.raises(ConfigError) as caught:
            load_profile(path)
        lines = str(caught.value).splitlines()
        assert len(lines) == 1, (value, lines)
        assert lines[0].startswith(f"{path}: {shown}: must "), (value, lines)
        refused += 1
    assert refused >= 4


def mutate(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data[part]
    if value is KeyError:
        del data[last]
    else:
        data[last] = value


@pytest.mark.parametrize(("path", "value", "line", "lines"), [
    ("patterns.iso.functions.boom.sign", 0.5, "patterns.iso.functions.boom.sign: must be +1 or -1 (got 0.5)", 1),
    ("patterns.iso.functions.boom.axis", "nope", "patterns.iso.functions.boom.axis: unknown axis 'nope'", 1),
    ("patterns.iso.functions.boom", KeyError, "patterns.iso: leaves boom unbound", 1),
    ("patterns.sae.functions.dig", {"axis": "left_x"}, "patterns.sae.functions.dig: unknown machine function 'dig'", 1),
    ("joystick.enable_button", "deadman", "joystick.enable_button: 'deadman' is not one of joystick.buttons", 1),
    ("joystick.deadband", 0.7, "joystick.deadband: must be a finite number between 0 and 0.5 (got 0.7)", 1),
    ("default_pattern", "diagonal", "default_pattern: no pattern 'diagonal'", 1),
    ("cab_joysticks.joysticks.right.y.sign", 2, "cab_joysticks.joysticks.right.y.sign: must be +1 or -1 (got 2)", 1),
    ("cab_joysticks.joysticks.right.y.function", "dig", "cab_joysticks.joysticks.right.y.function: unknown machine "
                                                        "function 'dig'", 2),
    ("cab_joysticks.joysticks.right.y", KeyError, "cab_joysticks: leaves boom without a joystick axis", 1),
    ("cab_joysticks.joysticks.travel.source_address", 0x2B,
     "cab_joysticks.joysticks.travel.source_address: 0x2B is also joystick left", 1),
    ("cab_joysticks.joysticks.right.x.function", "arm", "cab_joysticks.joysticks.right.x.function: 'arm' is also "
                                                        "sent by left.y", 2),
    ("cab_joysticks.enable.joystick", "middle", "cab_joysticks.enable.joystick: no joystick 'middle'", 1),
    ("cab_joysticks.enable.button", 13, "cab_joysticks.enable.button: must be a whole number between 1 and 12", 1),
    ("bindings.failure.buttons", ["enable"], "bindings.failure.buttons: 'enable' drives the machine", 1),
    ("bindings.failure.hold_s", 0.5, "bindings.failure: same buttons and hold time as bindings.start_stop", 1),
    ("bindings.explode", {"buttons": ["horn"]}, "bindings.explode: unknown action (known: start, stop", 1),
    ("functions", "boom twice", "functions[6].name: 'boom' is listed twice", 1),
])
def test_each_mistake_is_one_line_naming_the_key(tmp_path, path, value, line, lines):
    data = full_profile()
    if path == "bindings.failure.hold_s":
        data["bindings"]["failure"]["buttons"] = ["marker"]
        value = 1.0
    if value == "boom twice":
        value = [*data["functions"], {"name": "boom", "positive": "raise"}]
    mutate(data, path, value)
    source = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_profile(source)
    reported = str(caught.value).splitlines()
    assert any(text.startswith(f"{source}: {line}") for text in reported), reported
    assert len(reported) == lines, reported  # 2: a function sent twice (or not at all) also leaves one uncovered


def test_all_mistakes_in_one_pass(tmp_path):
    data = full_profile()
    mutate(data, "joystick.expo", ".nan")
    mutate(data, "cab_joysticks.rate_hz", 1e9)
    mutate(data, "patterns.sae.functions.arm.axis", "nope")
    mutate(data, "kind", KeyError)
    source = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_profile(source)
    keys = [line.split(": ")[1] for line in str(caught.value).splitlines()]
    assert keys == ["kind", "joystick.expo", "cab_joysticks.rate_hz", "patterns.sae.functions.arm.axis"]


def test_the_cab_layout_checks_itself():
    left = CabJoystick("left", 0x2B, CabAxis("boom", -1.0), None)
    with pytest.raises(ConfigError, match=r"cab_joysticks\.rate_hz: must be a finite number between 1 and 200 "
                                          r"\(got nan\)"):
        CabJoystickLayout(float("nan"), (left,), "left", 1)
    with pytest.raises(ConfigError, match=r"source_address: must be a whole number between 0 and 253 \(got 254\)"):
        CabJoystickLayout(50.0, (CabJoystick("left", 254, None, None),), "left", 1)
    with pytest.raises(ConfigError, match=r"must be unique"):
        CabJoystickLayout(50.0, (left, CabJoystick("right", 0x2B, None, None)), "left", 1)
    with pytest.raises(ConfigError, match=r"enable\.button: must be a whole number between 1 and 12"):
        CabJoystickLayout(50.0, (left,), "left", 0)
    with pytest.raises(ConfigError, match=r"sign: must be \+1 or -1 \(got 0\.5\)"):
        CabAxis("boom", 0.5)
    assert copy.copy(left) == left
