"""Machine profiles: every number finite and in range, every cross-reference checked, one line per mistake."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from excap.core.errors import ConfigError
from excap.drivers.machine.cab_joysticks import CabAxis, CabJoystick, CabJoystickLayout
from excap.drivers.machine.profiles import load_profile
from excap.station.json_schema import json_schema
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


def lines_for(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    source = write(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_profile(source)
    return [line.removeprefix(f"{source}: ") for line in str(caught.value).splitlines()]


def original(name: str = "excavator_20t") -> dict[str, Any]:
    return yaml.safe_load(load_profile(name).source.read_text())


EXCAVATOR_AXES = "left_x, left_y, right_x, right_y, travel_left, travel_right"
LOADER_BUTTONS = "enable, fnr_forward, fnr_reverse, horn, marker"


def test_cross_reference_messages_name_what_there_is(tmp_path):
    data = original()
    data["patterns"]["iso"]["functions"]["boom"]["axis"] = "stick"
    data["default_pattern"] = "diagonal"
    data["cab_joysticks"]["enable"]["joystick"] = "middle"
    data["bindings"]["marker"]["buttons"] = ["bell"]
    assert lines_for(tmp_path, data) == [
        f"patterns.iso.functions.boom.axis: unknown axis 'stick' (has: {EXCAVATOR_AXES})",
        "default_pattern: no pattern 'diagonal' (has: iso, sae)",
        "bindings.marker.buttons: unknown button 'bell' (has: enable, horn, marker)",
        "cab_joysticks.enable.joystick: no joystick 'middle' (has: left, right, travel)",
    ]


def test_every_unbound_and_uncovered_function_is_listed(tmp_path):
    data = original()
    del data["patterns"]["iso"]["functions"]["boom"], data["patterns"]["iso"]["functions"]["arm"]
    del data["cab_joysticks"]["joysticks"]["right"]
    assert lines_for(tmp_path, data) == ["patterns.iso: leaves boom, arm unbound",
                                         "cab_joysticks: leaves boom, bucket without a joystick axis"]


def test_empty_functions_and_patterns(tmp_path):
    data = original()
    data["patterns"] = {}
    assert lines_for(tmp_path, data) == ["patterns: must define at least one control pattern"]
    data = original()
    data["functions"] = []
    assert "functions: must list at least one machine function" in lines_for(tmp_path, data)


def test_pattern_names_differ_in_more_than_case(tmp_path):
    data = original()
    data["patterns"]["ISO"] = copy.deepcopy(data["patterns"]["iso"])
    assert lines_for(tmp_path, data) == ["patterns.iso: pattern names must differ in more than letter case",
                                         "patterns.ISO: pattern names must differ in more than letter case"]


def test_button_bindings_name_profile_buttons(tmp_path):
    data = original("wheel_loader_20t")
    data["patterns"]["two_lever"]["functions"]["direction"]["buttons"]["negative"] = "gas"
    assert lines_for(tmp_path, data) == [
        f"patterns.two_lever.functions.direction.buttons.negative: unknown button 'gas' (has: {LOADER_BUTTONS})"]


@pytest.mark.parametrize(("profile", "button"), [("excavator_20t", "enable"), ("wheel_loader_20t", "enable"),
                                                 ("wheel_loader_20t", "fnr_forward"),
                                                 ("wheel_loader_20t", "fnr_reverse")])
def test_station_gestures_cannot_use_buttons_that_drive_the_machine(tmp_path, profile, button):
    data = original(profile)
    data["bindings"]["marker"]["buttons"] = [button]
    assert lines_for(tmp_path, data) == [
        f"bindings.marker.buttons: '{button}' drives the machine (enable or a function button)"]


def test_every_binding_is_checked_whatever_comes_before_it(tmp_path):
    data = original()  # no start or stop bindings: the first actions are absent
    data["bindings"]["marker"]["buttons"] = []
    data["bindings"]["success"]["hold_s"] = float("nan")
    data["bindings"]["failure"]["buttons"] = ["bell"]
    assert lines_for(tmp_path, data) == [
        "bindings.success.hold_s: must be a finite number between 0 and 30 (got nan)",
        "bindings.failure.buttons: unknown button 'bell' (has: enable, horn, marker)",
        "bindings.marker.buttons: missing (a list of profile buttons pressed together)",
    ]


def test_a_cab_joystick_may_report_on_one_axis_only(tmp_path):
    data = original("wheel_loader_20t")
    data["cab_joysticks"]["joysticks"]["steering"] = {"source_address": 0x2C, "y": {"function": "steer", "sign": -1}}
    profile = load_profile(write(tmp_path, data))
    steering = next(j for j in profile.cab_joysticks.joysticks if j.name == "steering")
    assert steering.x is None and steering.y == CabAxis("steer", -1.0)


@pytest.mark.parametrize(("path", "value", "line"), [
    ("joystick", "nope", "joystick: must be a mapping (got 'nope')"),
    ("joystick.buttons", 5, "joystick.buttons: must be a list (got 5)"),
    ("joystick.axes", "left_x", "joystick.axes: must be a list (got 'left_x')"),
    ("joystick.enable_button", "", "joystick.enable_button: must not be empty"),
    ("functions", [{"name": "boom"}, 5], "functions[1]: must be a mapping (got 5)"),
    ("patterns", "nope", "patterns: must be a mapping (got 'nope')"),
    ("bindings", ["marker"], "bindings: must be a mapping (got a list)"),
    ("cab_joysticks.joysticks", 5, "cab_joysticks.joysticks: must be a mapping (got 5)"),
    ("cab_joysticks.enable", 5, "cab_joysticks.enable: must be a mapping (got 5)"),
])
def test_a_broken_section_is_one_line_and_the_cross_checks_skip_it(tmp_path, path, value, line):
    data = original()
    mutate(data, path, value)
    assert lines_for(tmp_path, data) == [line]
