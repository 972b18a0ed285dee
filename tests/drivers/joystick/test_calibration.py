"""Joystick calibration: the per-axis mapping, the YAML file, and the two-phase Calibrator."""

import math
import os

import pytest
import yaml

from excap.core.errors import ConfigError
from excap.drivers.device_schema import CalibrationDocument
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.joystick.calibration import (
    AxisCalibration,
    Calibrator,
    DeviceCalibration,
    calibrated,
    load_calibration,
    save_calibration,
)
from excap.drivers.machine.mapping import shape_axis
from tests.support.config_docs import BAD_VALUES, accepted_by, numeric_keys, place


def sample(*axes: float, buttons: tuple[int, ...] = (0, 1)) -> JoystickSample:
    return JoystickSample(device="left", t_ns=1, t_device_ns=2, axes=tuple(axes), buttons=buttons)


# -- apply ---------------------------------------------------------------------------------------


def test_asymmetric_range_reaches_both_ends():
    axis = AxisCalibration(centre=0.1, min=-0.7, max=0.9)
    assert axis.apply(0.1) == 0.0
    assert axis.apply(0.9) == pytest.approx(1.0)
    assert axis.apply(-0.7) == pytest.approx(-1.0)
    assert axis.apply(0.5) == pytest.approx(0.5)  # 0.4 of 0.8 above centre
    assert axis.apply(-0.3) == pytest.approx(-0.5)  # 0.4 of 0.8 below centre
    assert axis.apply(-0.5) == pytest.approx(-0.75)


def test_values_past_the_range_are_clipped():
    axis = AxisCalibration(centre=0.0, min=-0.8, max=0.6)
    assert axis.apply(0.95) == 1.0
    assert axis.apply(-1.0) == -1.0


def test_inversion():
    axis = AxisCalibration(centre=0.0, min=-0.5, max=1.0, invert=True)
    assert axis.apply(1.0) == pytest.approx(-1.0)
    assert axis.apply(-0.25) == pytest.approx(0.5)


def test_deadband_and_expo_follow_shape_axis():
    axis = AxisCalibration(centre=0.0, min=-1.0, max=1.0, deadband=0.1, expo=0.3)
    assert axis.apply(0.05) == 0.0
    assert axis.apply(-0.1) == 0.0
    for value in (0.2, -0.55, 0.9, 1.0):
        assert axis.apply(value) == pytest.approx(shape_axis(value, 0.1, 0.3))
    assert axis.apply(1.0) == pytest.approx(1.0)


def test_deadband_applies_after_centre_and_inversion():
    axis = AxisCalibration(centre=0.2, min=-0.6, max=0.6, deadband=0.1, invert=True)
    assert axis.apply(0.23) == 0.0  # 0.075 of travel: inside the deadband
    assert axis.apply(0.6) == pytest.approx(-1.0)
    assert axis.apply(-0.2) == pytest.approx(shape_axis(0.5, 0.1, 0.0))


def test_nan_stays_nan():
    assert math.isnan(AxisCalibration().apply(math.nan))


def test_calibrated_callback_applies_by_name_and_passes_the_rest():
    calibration = DeviceCalibration("left", {"y": AxisCalibration(centre=0.0, min=-0.5, max=0.5, invert=True)})
    seen: list[JoystickSample] = []
    callback = calibrated(seen.append, calibration, ("x", "y", "z"))
    callback(sample(0.3, 0.25, -0.7))
    assert seen[0].axes == pytest.approx((0.3, -0.5, -0.7))
    assert seen[0].buttons == (0, 1)
    assert (seen[0].device, seen[0].t_ns, seen[0].t_device_ns) == ("left", 1, 2)


def test_calibrated_refuses_axes_the_device_lacks():
    calibration = DeviceCalibration("left", {"theta": AxisCalibration()})
    with pytest.raises(ConfigError, match="theta"):
        calibrated(lambda s: None, calibration, ("x", "y"))


# -- files ---------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    calibration = DeviceCalibration("left", {
        "x": AxisCalibration(centre=0.013, min=-0.91, max=0.87, deadband=0.05, expo=0.2, invert=False),
        "y": AxisCalibration(centre=-0.02, min=-1.0, max=0.99, deadband=0.0, expo=0.0, invert=True)})
    path = save_calibration(calibration, tmp_path / "cal" / "left.yaml")
    assert load_calibration(path) == calibration
    assert list(load_calibration(path).axes) == ["x", "y"]
    assert [p.name for p in path.parent.iterdir()] == ["left.yaml"]  # no temporary file left behind


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "left.yaml"
    path.write_text("old", encoding="utf-8")
    save_calibration(DeviceCalibration("left", {"x": AxisCalibration()}), path)
    assert load_calibration(path).axes["x"] == AxisCalibration()


def test_save_refuses_an_inconsistent_calibration(tmp_path):
    path = tmp_path / "left.yaml"
    with pytest.raises(ConfigError, match=r"axes\.x\.max"):
        save_calibration(DeviceCalibration("left", {"x": AxisCalibration(centre=0.5, max=0.4)}), path)
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def write(tmp_path, data) -> str:
    path = tmp_path / "cal.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return str(path)


def good() -> dict:
    return {"schema": "excap.joystick_calibration", "device": "left",
            "axes": {"x": {"centre": 0.0, "min": -0.9, "max": 0.9, "deadband": 0.05, "expo": 0.0, "invert": False}}}


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda d: d["axes"]["x"].pop("min"), r"axes\.x\.min: missing$"),
    (lambda d: d["axes"]["x"].update(max="far"), r"axes\.x\.max: must be a finite number between -1 and 1"),
    (lambda d: d["axes"]["x"].update(centre=1.0), r"axes\.x\.max: must be above centre"),
    (lambda d: d["axes"]["x"].update(min=0.5), r"axes\.x\.min: must be below centre"),
    (lambda d: d["axes"]["x"].update(deadband=1.5), r"axes\.x\.deadband"),
    (lambda d: d["axes"]["x"].update(expo=-0.1), r"axes\.x\.expo"),
    (lambda d: d["axes"]["x"].update(invert="yes"), r"axes\.x\.invert"),
    (lambda d: d["axes"]["x"].update(offset=0.1), r"axes\.x\.offset: unknown key"),
    (lambda d: d["axes"].update(y=[1, 2]), r"axes\.y: must be a mapping"),
    (lambda d: d.pop("device"), r"device"),
    (lambda d: d.update(axes={}), r"axes"),
    (lambda d: d.update(schema="something else"), r"not an excap joystick calibration"),
])
def test_bad_files_name_file_and_key(tmp_path, mutate, expected):
    data = good()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError, match=expected) as info:
        load_calibration(path)
    assert str(info.value).startswith(path)


def test_invalid_yaml_and_missing_file(tmp_path):
    path = write(tmp_path, "axes: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_calibration(path)
    assert path in str(info.value)
    with pytest.raises(ConfigError, match="cannot read"):
        load_calibration(tmp_path / "absent.yaml")


# -- Calibrator ----------------------------------------------------------------------------------


def test_calibrator_from_synthetic_samples():
    calibrator = Calibrator(("x", "y"))
    calibrator.add(sample(0.9, 0.9))  # before any phase: ignored
    calibrator.start_centre()
    for x, y in ((0.02, -0.01), (0.04, -0.03), (0.03, -0.02), (math.nan, -0.02)):
        calibrator.add(sample(x, y))
    calibrator.start_range()
    for step in range(101):
        t = step / 100
        calibrator.add(sample(-0.8 + 1.7 * t, 0.95 - 1.9 * t))
    calibrator.finish()
    calibrator.add(sample(1.0, 1.0))  # after the sweep: ignored
    result = calibrator.result(deadband=0.04, expo=0.1, invert=("y",))
    assert result.device == "left"
    assert result.axes["x"].centre == pytest.approx(0.03)
    assert result.axes["y"].centre == pytest.approx(-0.02)
    assert (result.axes["x"].min, result.axes["x"].max) == pytest.approx((-0.8, 0.9))
    assert (result.axes["y"].min, result.axes["y"].max) == pytest.approx((-0.95, 0.95))
    assert result.axes["x"].deadband == 0.04 and result.axes["x"].expo == 0.1
    assert result.axes["y"].invert and not result.axes["x"].invert
    assert calibrator.samples == {"centre": 4, "range": 101}


def test_calibrator_refuses_a_small_range_naming_the_axis():
    calibrator = Calibrator(("x", "y"), device="left")
    calibrator.start_centre()
    calibrator.add(sample(0.0, 0.0))
    calibrator.start_range()
    calibrator.add(sample(-1.0, -0.05))
    calibrator.add(sample(1.0, 0.1))
    with pytest.raises(ConfigError, match=r"axis y: range 0\.150 is below 0\.2"):
        calibrator.result()


def test_calibrator_refuses_one_sided_travel():
    calibrator = Calibrator(("x",), device="left")
    calibrator.start_centre()
    calibrator.add(sample(0.0))
    calibrator.start_range()
    calibrator.add(sample(-0.01))
    calibrator.add(sample(0.9))
    with pytest.raises(ConfigError, match="axis x: no travel on the negative side"):
        calibrator.result()


def test_calibrator_without_centre_samples():
    calibrator = Calibrator(("x",), device="left")
    calibrator.start_range()
    calibrator.add(sample(-1.0))
    calibrator.add(sample(1.0))
    with pytest.raises(ConfigError, match="axis x: no centre samples"):
        calibrator.result()


CALIBRATION_KEYS = numeric_keys(CalibrationDocument.model_json_schema(by_alias=True))


@pytest.mark.parametrize("key", CALIBRATION_KEYS, ids=str)
def test_every_numeric_key_of_a_calibration_file_refuses_bad_values(tmp_path, key):
    refused = 0
    for value in BAD_VALUES:
        if accepted_by(key.schema, value):
            continue
        data = good()
        container, item, shown = place(data, key)
        container[item] = value
        path = write(tmp_path, data)
        with pytest.raises(ConfigError) as caught:
            load_calibration(path)
        lines = str(caught.value).splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{path}: {shown}: must "), (value, lines)
        refused += 1
    assert refused >= 4
    assert {str(k) for k in CALIBRATION_KEYS} == {f"axes.<any key>.{name}" for name in
                                                  ("centre", "min", "max", "deadband", "expo")}
