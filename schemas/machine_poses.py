"""The pose of a machine's links from its joint angles: parent/child frame transforms for 3D views.

One small kinematic chain per machine kind (excap.schemas.machine_kinds): the joint angles the machine's CAN traffic
reports (`joint_angles`, from decoded `Message.Signal` values in degrees) become rigid transforms between named frames
(`machine_poses`), e.g. for Foxglove's 3D panel (`foxglove.FrameTransforms`) or a ROS `tf` tree. Lengths are those of
the simulated 20 t machines (excap.drivers.sim); they place the links for viewing, they are no survey of a machine.

Frames (x forward, y left, z up; angles right-handed):

- excavator: `base_link` -> `upper` (swing about z) -> `boom` (pitch at the boom foot) -> `arm` -> `bucket`;
- wheel loader: `base_link` (rear frame, articulation joint at its origin) -> `front_frame` (articulation about z)
  -> `lift_arm` (lift angle at the arm pivot) -> `bucket` (bucket angle to the ground, at the bucket pin).

A link that pitches up by angle a is a rotation by -a about its parent's y axis (y points left, so a positive
rotation about y turns x down).
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from excap.schemas.machine_kinds import MACHINE_KINDS

ROOT_FRAME = "base_link"


Angle = float | np.ndarray
"""One angle (rad), or one per time: the functions here work on either, element by element."""
Quaternion = tuple[Angle, Angle, Angle, Angle]


@dataclass(frozen=True)
class FramePose:
    """The pose of `child` in `parent`: translation (m) and rotation as a unit quaternion (x, y, z, w); with joint
    angles given as arrays, each rotation component is an array (or a constant) over the times."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: Quaternion


def about_z(angle: Angle) -> Quaternion:
    return 0.0, 0.0, np.sin(angle / 2), np.cos(angle / 2)


def pitch_up(angle: Angle) -> Quaternion:
    """A rotation raising the x axis by `angle` (rad) towards z: -angle about y."""
    return 0.0, np.sin(-angle / 2), 0.0, np.cos(-angle / 2)


# Link geometry (m): the simulated excavator's boom foot, boom, arm; the loader's arm pivot and arm.
EXCAVATOR_UPPER_HEIGHT = 1.0
EXCAVATOR_BOOM_FOOT = (0.6, 0.0, 1.0)  # from the swing centre at the upper's height
EXCAVATOR_BOOM = 5.7
EXCAVATOR_ARM = 2.9
LOADER_FRONT_AXLE = 1.65  # articulation joint to front axle
LOADER_LIFT_PIVOT = (LOADER_FRONT_AXLE - 0.3, 0.0, 2.1)
LOADER_ARM = 3.1


def joint_angles(kind: str, signals: Mapping[str, float]) -> dict[str, float]:
    """The kind's joint angles (rad) from decoded signals `Message.Signal` -> value (degrees), as the kind's entry
    in excap.schemas.machine_kinds defines them (a signal, or the difference of two). A joint whose signals are
    missing or not finite is left out; an unknown kind has none."""
    entry = MACHINE_KINDS.get(kind)
    if entry is None:
        return {}
    angles: dict[str, float] = {}
    for joint in entry.joints:
        value = signals.get(joint.signal)
        if value is None or not math.isfinite(value):
            continue
        if joint.relative_to:
            reference = signals.get(joint.relative_to)
            if reference is None or not math.isfinite(reference):
                continue
            value = (value - reference + 180.0) % 360.0 - 180.0
        angles[joint.name] = math.radians(value)
    return angles


def excavator_poses(joints: Mapping[str, Angle]) -> list[FramePose]:
    """swing, boom (boom pitch), arm (relative to the boom), bucket (relative to the arm); rad."""
    swing, boom = joints.get("swing", 0.0), joints.get("boom", 0.0)
    arm, bucket = joints.get("arm", 0.0), joints.get("bucket", 0.0)
    return [
        FramePose(ROOT_FRAME, "upper", (0.0, 0.0, EXCAVATOR_UPPER_HEIGHT), about_z(swing)),
        FramePose("upper", "boom", EXCAVATOR_BOOM_FOOT, pitch_up(boom)),
        FramePose("boom", "arm", (EXCAVATOR_BOOM, 0.0, 0.0), pitch_up(arm)),
        FramePose("arm", "bucket", (EXCAVATOR_ARM, 0.0, 0.0), pitch_up(bucket)),
    ]


def wheel_loader_poses(joints: Mapping[str, Angle]) -> list[FramePose]:
    """articulation, lift (arm to horizontal), tilt (bucket floor to ground); rad."""
    articulation, lift, tilt = joints.get("articulation", 0.0), joints.get("lift", 0.0), joints.get("tilt", 0.0)
    return [
        FramePose(ROOT_FRAME, "front_frame", (0.0, 0.0, 0.0), about_z(articulation)),
        FramePose("front_frame", "lift_arm", LOADER_LIFT_PIVOT, pitch_up(lift)),
        FramePose("lift_arm", "bucket", (LOADER_ARM, 0.0, 0.0), pitch_up(tilt - lift)),
    ]


POSES = {"excavator": excavator_poses, "wheel_loader": wheel_loader_poses}


def machine_poses(kind: str, joints: Mapping[str, Angle]) -> list[FramePose]:
    """The link transforms of a machine `kind` from its joint angles (rad; a missing joint is 0); [] for a kind
    without a chain."""
    chain = POSES.get(kind)
    return chain(joints) if chain is not None else []


__all__ = ["POSES", "ROOT_FRAME", "Angle", "FramePose", "joint_angles", "machine_poses"]
