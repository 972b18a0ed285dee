"""Conversions between ROS 2 messages and excap rows. Duck-typed: no rclpy import needed here."""

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import cv2
import numpy as np

from excap.drivers.sim.angles import wrap_angle
from excap.schemas.machine_kinds import JointSignal


def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp_fields(t_ns: int) -> tuple[int, int]:
    return t_ns // 1_000_000_000, t_ns % 1_000_000_000


def image_to_bgr(msg: Any) -> np.ndarray:
    """sensor_msgs/Image -> BGR (or single-channel) uint8 array for JPEG encoding."""
    encoding = msg.encoding.lower()
    channels, dtype = {
        "bgr8": (3, np.uint8), "rgb8": (3, np.uint8), "bgra8": (4, np.uint8), "rgba8": (4, np.uint8),
        "mono8": (1, np.uint8), "8uc1": (1, np.uint8), "8uc3": (3, np.uint8), "mono16": (1, np.uint16),
        "16uc1": (1, np.uint16),
    }.get(encoding, (0, None))
    if dtype is None:
        raise ValueError(f"unsupported image encoding {msg.encoding!r}")
    itemsize = np.dtype(dtype).itemsize
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    raw = np.frombuffer(memoryview(msg.data), dtype=np.uint8)
    if raw.size < height * step or step < width * channels * itemsize:
        raise ValueError(f"image data too short: {raw.size} bytes for {height} rows of {step}")
    rows = raw[: height * step].reshape(height, step)[:, : width * channels * itemsize]
    if itemsize > 1:
        wire = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
        image = rows.copy().view(wire).astype(dtype)
    else:
        image = rows.copy()
    image = image.reshape(height, width, channels) if channels > 1 else image.reshape(height, width)
    if dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if encoding == "rgb8":
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif encoding == "rgba8":
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGR)
    elif encoding == "bgra8":
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def is_jpeg(fmt: str) -> bool:
    """sensor_msgs/CompressedImage.format: `jpeg`, `rgb8; jpeg compressed bgr8`, ..."""
    lowered = fmt.lower()
    return "jpeg" in lowered or "jpg" in lowered


def joy_row(t_ns: int, msg: Any) -> tuple[int, int, list[float], list[int]]:
    """sensor_msgs/Joy -> joystick row; buttons are clamped into uint8."""
    buttons = [min(max(int(b), 0), 255) for b in msg.buttons]
    return t_ns, stamp_to_ns(msg.header.stamp), [float(a) for a in msg.axes], buttons


def commands_from_joint_state(functions: Sequence[str], names: Sequence[str],
                              positions: Sequence[float]) -> tuple[list[float], list[str]]:
    """JointState names/positions -> values in the profile's function order (NaN where missing),
    plus the names that are not machine functions."""
    values = [float("nan")] * len(functions)
    index = {name: i for i, name in enumerate(functions)}
    unknown = []
    for name, value in zip(names, positions, strict=False):
        if name in index:
            values[index[name]] = float(value)
        else:
            unknown.append(name)
    return values, unknown


class StateJoint(Protocol):
    """A joint of a simulated machine's state (excap.drivers.sim.machines.SimJoint is one)."""

    @property
    def name(self) -> str: ...
    def of(self, state: Any) -> tuple[float, float]: ...


def joints_of_state(state: Any, joints: Sequence[StateJoint]) -> tuple[list[str], list[float], list[float]]:
    """The simulated machine's joints: names, positions (rad) and velocities (rad/s), in the given order."""
    values = [joint.of(state) for joint in joints]
    return [joint.name for joint in joints], [p for p, _ in values], [v for _, v in values]


def joints_from_signals(signals: Mapping[str, Mapping[str, float]],
                        joints: Sequence[JointSignal]) -> tuple[list[str], list[float]]:
    """Joint angles (rad) from decoded J1939 messages (`Message` -> signal -> value, degrees), as the machine
    kind's registry entry (excap.schemas.machine_kinds) says: a signal, or the difference of two (e.g. the arm
    from the arm's and the boom's inclinometer pitch). Only the joints whose messages have been seen are
    returned, in the given order."""

    def degrees(name: str) -> float | None:
        message, _, signal = name.partition(".")
        value = signals.get(message, {}).get(signal)
        return None if value is None or not math.isfinite(value) else float(value)

    names, positions = [], []
    for joint in joints:
        angle = degrees(joint.signal)
        if angle is None:
            continue
        if joint.relative_to:
            reference = degrees(joint.relative_to)
            if reference is None:
                continue
            names.append(joint.name)
            positions.append(wrap_angle(math.radians(angle - reference)))
        else:
            names.append(joint.name)
            positions.append(math.radians(angle))
    return names, positions
