"""Per-device joystick calibration: centre, travel, deadband, expo and inversion per axis, kept in YAML.

Values are in the scale drivers emit ([-1, 1], uncalibrated). `AxisCalibration.apply` subtracts the
centre, scales each side separately so that `min` and `max` reach -1 and +1, clips, inverts if asked,
then applies deadband and expo exactly as `excap.drivers.machine.mapping.shape_axis` does.

File layout::

    schema: excap.joystick_calibration
    device: left
    axes:
      x: {centre: 0.01, min: -0.97, max: 0.95, deadband: 0.05, expo: 0.0, invert: false}
"""

import dataclasses
import math
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from excap.core.errors import ConfigError
from excap.core.yaml_files import load_yaml
from excap.drivers.config_schema import raise_problems, validate_partially
from excap.drivers.device_schema import CalibrationDocument
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.limits import CALIBRATION_VALUE, DEADBAND, EXPO
from excap.drivers.machine.mapping import shape_axis

SCHEMA = "excap.joystick_calibration"
MIN_RANGE = 0.2
"""Smallest max - min the Calibrator accepts for an axis."""
MIN_SIDE = 0.05
"""Smallest travel on either side of centre the Calibrator accepts."""


@dataclass(frozen=True)
class AxisCalibration:
    centre: float = 0.0
    min: float = -1.0
    max: float = 1.0
    deadband: float = 0.0
    expo: float = 0.0
    invert: bool = False

    def problem(self) -> tuple[str, str] | None:
        """(key, reason) of the first inconsistent value, None when the calibration is usable."""
        for key in ("centre", "min", "max"):
            if CALIBRATION_VALUE.accept(getattr(self, key)) is None:
                return key, CALIBRATION_VALUE.message(getattr(self, key))
        if not self.min < self.centre:
            return "min", f"must be below centre ({self.min} >= {self.centre})"
        if not self.centre < self.max:
            return "max", f"must be above centre ({self.max} <= {self.centre})"
        if DEADBAND.accept(self.deadband) is None:
            return "deadband", DEADBAND.message(self.deadband)
        if EXPO.accept(self.expo) is None:
            return "expo", EXPO.message(self.expo)
        return None

    def apply(self, value: float) -> float:
        """Raw value -> calibrated value in [-1, 1]; NaN stays NaN."""
        if math.isnan(value):
            return math.nan
        offset = value - self.centre
        scaled = offset / (self.max - self.centre) if offset >= 0 else offset / (self.centre - self.min)
        scaled = min(1.0, max(-1.0, scaled))
        if self.invert:
            scaled = -scaled
        return shape_axis(scaled, self.deadband, self.expo)


@dataclass(frozen=True)
class DeviceCalibration:
    device: str
    axes: dict[str, AxisCalibration]

    def apply(self, axes: Sequence[float], axis_names: Sequence[str]) -> tuple[float, ...]:
        """Calibrate a sample's axes (named in order by `axis_names`); axes without a calibration pass as they are."""
        out = []
        for name, value in zip(axis_names, axes, strict=False):
            calibration = self.axes.get(name)
            out.append(calibration.apply(value) if calibration is not None else float(value))
        out.extend(float(v) for v in axes[len(out):])
        return tuple(out)


def calibrated(callback: SampleCallback, calibration: DeviceCalibration,
               axis_names: Sequence[str]) -> SampleCallback:
    """A SampleCallback that calibrates each sample's axes, then hands it to `callback`."""
    names = tuple(axis_names)
    unknown = [name for name in calibration.axes if name not in names]
    if unknown:
        raise ConfigError(f"calibration for {calibration.device!r} names axes the device does not have: "
                          f"{', '.join(unknown)} (device axes: {', '.join(names)})")

    def apply(sample: JoystickSample) -> None:
        callback(dataclasses.replace(sample, axes=calibration.apply(sample.axes, names)))

    return apply


# -- files ----------------------------------------------------------------------------------------


def calibration_to_dict(calibration: DeviceCalibration) -> dict[str, Any]:
    return {"schema": SCHEMA, "device": calibration.device,
            "axes": {name: {"centre": float(axis.centre), "min": float(axis.min), "max": float(axis.max),
                            "deadband": float(axis.deadband), "expo": float(axis.expo),
                            "invert": bool(axis.invert)}
                     for name, axis in calibration.axes.items()}}


def calibration_from_dict(data: Any, path: Path) -> DeviceCalibration:
    """Check a parsed calibration file against its schema; every mistake is one `path: key: message` line."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: not an excap joystick calibration (schema: {SCHEMA})")
    document, problems = validate_partially(CalibrationDocument, data)
    raise_problems(path, problems)
    assert document is not None
    axes = {name: AxisCalibration(float(a.centre), float(a.min), float(a.max), float(a.deadband), float(a.expo),
                                  a.invert) for name, a in document.axes.items()}
    return DeviceCalibration(document.device, axes)


def load_calibration(path: str | Path) -> DeviceCalibration:
    source = Path(path)
    return calibration_from_dict(load_yaml(source, "joystick calibration"), source)


def save_calibration(calibration: DeviceCalibration, path: str | Path) -> Path:
    """Write atomically: a temporary file in the same folder, then os.replace over `path`."""
    target = Path(path)
    for name, axis in calibration.axes.items():
        problem = axis.problem()
        if problem is not None:
            raise ConfigError(f"{target}: axes.{name}.{problem[0]}: {problem[1]}")
    text = yaml.safe_dump(calibration_to_dict(calibration), sort_keys=False, default_flow_style=None)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return target


# -- calibration procedure ------------------------------------------------------------------------


class Calibrator:
    """Collects samples in two phases: "centre" (sticks released) and "range" (the operator sweeps every axis).

    `add` is a SampleCallback (thread-safe); samples outside a phase are ignored, NaN values are skipped.
    Without `axis_names`, the axes are named axis0, axis1, ... after the first sample's axis count.
    """

    def __init__(self, axis_names: Sequence[str] | None = None, device: str = "") -> None:
        self.device = device
        self.phase = "idle"
        self._lock = threading.Lock()
        self.axis_names: tuple[str, ...] = ()
        self.samples = {"centre": 0, "range": 0}
        if axis_names is not None:
            self._name_axes(tuple(axis_names))

    def name_axes(self, axis_names: Sequence[str]) -> None:
        """Name the axes (in sample order) and start over; for when the names are known only after construction."""
        with self._lock:
            self._name_axes(tuple(axis_names))
            self.samples = {"centre": 0, "range": 0}

    def _name_axes(self, names: tuple[str, ...]) -> None:
        self.axis_names = names
        count = len(names)
        self._sums = [0.0] * count
        self._counts = [0] * count
        self._mins = [math.inf] * count
        self._maxs = [-math.inf] * count

    def start_centre(self) -> None:
        with self._lock:
            self.phase = "centre"

    def start_range(self) -> None:
        with self._lock:
            self.phase = "range"

    def finish(self) -> None:
        """Stop collecting (until the next `start_centre` or `start_range`)."""
        with self._lock:
            self.phase = "done"

    def add(self, sample: JoystickSample) -> None:
        with self._lock:
            if self.phase not in ("centre", "range"):
                return
            if not self.device:
                self.device = sample.device
            if not self.axis_names:
                self._name_axes(tuple(f"axis{i}" for i in range(len(sample.axes))))
            self.samples[self.phase] += 1
            for index, value in enumerate(sample.axes[:len(self.axis_names)]):
                if math.isnan(value):
                    continue
                if self.phase == "centre":
                    self._sums[index] += value
                    self._counts[index] += 1
                else:
                    self._mins[index] = min(self._mins[index], value)
                    self._maxs[index] = max(self._maxs[index], value)

    def result(self, deadband: float = 0.05, expo: float = 0.0,
               invert: Sequence[str] = ()) -> DeviceCalibration:
        """The calibration; ConfigError naming the axis when its centre or travel was not captured well."""
        with self._lock:
            if not self.axis_names:
                raise ConfigError(f"calibration of {self.device or 'joystick'}: no samples received")
            axes: dict[str, AxisCalibration] = {}
            for index, name in enumerate(self.axis_names):
                if self._counts[index] == 0:
                    raise ConfigError(f"calibration of {self.device or 'joystick'}: axis {name}: "
                                      f"no centre samples")
                centre = self._sums[index] / self._counts[index]
                low, high = self._mins[index], self._maxs[index]
                if not math.isfinite(low) or not math.isfinite(high):
                    raise ConfigError(f"calibration of {self.device or 'joystick'}: axis {name}: "
                                      f"no samples while sweeping")
                if high - low < MIN_RANGE:
                    raise ConfigError(f"calibration of {self.device or 'joystick'}: axis {name}: range "
                                      f"{high - low:.3f} is below {MIN_RANGE} (was it swept end to end?)")
                if centre - low < MIN_SIDE or high - centre < MIN_SIDE:
                    side = "negative" if centre - low < MIN_SIDE else "positive"
                    raise ConfigError(f"calibration of {self.device or 'joystick'}: axis {name}: "
                                      f"no travel on the {side} side of centre {centre:.3f} "
                                      f"(swept {low:.3f} .. {high:.3f})")
                axis = AxisCalibration(centre, low, high, deadband, expo, name in invert)
                problem = axis.problem()
                if problem is not None:
                    raise ConfigError(f"calibration of {self.device or 'joystick'}: axis {name}: "
                                      f"{problem[0]} {problem[1]}")
                axes[name] = axis
            return DeviceCalibration(self.device or "joystick", axes)
