"""Conversions between ROS 2 messages and excap rows. Duck-typed: no rclpy import needed here."""

import math
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np


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


JOINT_NAMES = ("swing", "boom", "arm", "bucket")


def joint_positions(state: Any) -> list[float]:
    """The simulated machine's joint angles (rad), in JOINT_NAMES order."""
    return [float(getattr(state, name)) for name in JOINT_NAMES]


def joint_velocities(state: Any) -> list[float]:
    return [float(getattr(state, f"{name}_rate")) for name in JOINT_NAMES]


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


def joints_from_signals(signals: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[float]]:
    """Joint angles (rad) from decoded J1939 messages (`Message` -> signal -> value): the inclinometers
    (BoomSSI2 / ArmSSI2 / BucketSSI2 report absolute pitch in degrees) and SwingStatus.SwingAngle.
    Only the joints whose messages have been seen are returned, in JOINT_NAMES order."""

    def pitch(message: str) -> float | None:
        value = signals.get(message, {}).get("PitchAngleExRange")
        return None if value is None or not math.isfinite(value) else math.radians(value)

    boom, arm_abs, bucket_abs = pitch("BoomSSI2"), pitch("ArmSSI2"), pitch("BucketSSI2")
    swing = signals.get("SwingStatus", {}).get("SwingAngle")
    joints = {
        "swing": math.radians(swing) if swing is not None and math.isfinite(swing) else None,
        "boom": boom,
        "arm": _wrap(arm_abs - boom) if arm_abs is not None and boom is not None else None,
        "bucket": _wrap(bucket_abs - arm_abs) if bucket_abs is not None and arm_abs is not None else None,
    }
    names = [name for name in JOINT_NAMES if joints[name] is not None]
    return names, [float(joints[name]) for name in names]  # type: ignore[arg-type]
