"""The machines' link poses from joint angles: composed, they put the excavator's pivots where the simulator's
kinematics has them, swing turns the whole upper structure, and CAN signals give the joints as the ROS node's do."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.drivers.sim.excavator import ExcavatorGeometry, ExcavatorState, joint_points
from excap.schemas.machine_poses import ROOT_FRAME, FramePose, joint_angles, machine_poses
from tests.support.fuzzing import fuzz_settings, tried


def rotation_matrix(q: tuple[float, float, float, float]) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def origins(poses: list[FramePose]) -> dict[str, np.ndarray]:
    """Every frame's origin in the root frame, composing the chain parent by parent."""
    frames = {ROOT_FRAME: (np.eye(3), np.zeros(3))}
    for pose in poses:
        rotation, origin = frames[pose.parent]
        frames[pose.child] = (rotation @ rotation_matrix(pose.rotation), origin + rotation @ np.array(pose.translation))
    return {name: origin for name, (_, origin) in frames.items()}


angles = st.floats(min_value=-math.pi, max_value=math.pi, allow_nan=False)


@fuzz_settings(200)
@given(boom=angles, arm=angles, bucket=angles, swing=angles)
def test_excavator_pivots_are_the_simulators(boom: float, arm: float, bucket: float, swing: float) -> None:
    tried("machine_poses excavator")
    state = ExcavatorState(boom=boom, arm=arm, bucket=bucket)
    expected = joint_points(state, ExcavatorGeometry())  # boom pivot, arm pivot, bucket pivot: forward, up
    at = origins(machine_poses("excavator", {"swing": swing, "boom": boom, "arm": arm, "bucket": bucket}))
    for frame, (forward, up) in zip(("boom", "arm", "bucket"), expected[:3], strict=True):
        assert at[frame] == pytest.approx([forward * math.cos(swing), forward * math.sin(swing), up], abs=1e-9)
    assert all(math.isclose(sum(v * v for v in p.rotation), 1.0) for p in machine_poses("excavator", {"boom": boom}))


def test_loader_chain_and_bucket_angle_to_ground() -> None:
    poses = machine_poses("wheel_loader", {"articulation": math.radians(30), "lift": math.radians(20),
                                           "tilt": math.radians(45)})
    assert [(p.parent, p.child) for p in poses] == [(ROOT_FRAME, "front_frame"), ("front_frame", "lift_arm"),
                                                    ("lift_arm", "bucket")]
    frames = {ROOT_FRAME: np.eye(3)}
    for pose in poses:
        frames[pose.child] = frames[pose.parent] @ rotation_matrix(pose.rotation)
    bucket_x = frames["bucket"] @ np.array([1.0, 0.0, 0.0])
    assert math.degrees(math.asin(bucket_x[2])) == pytest.approx(45.0)  # tilt is the bucket's angle to the ground
    assert math.degrees(math.atan2(bucket_x[1], bucket_x[0])) == pytest.approx(30.0)  # turned with the front frame


def test_joint_angles_from_can_signals() -> None:
    signals = {"BoomSSI2.PitchAngleExRange": 30.0, "ArmSSI2.PitchAngleExRange": -50.0,
               "BucketSSI2.PitchAngleExRange": 170.0, "SwingStatus.SwingAngle": float("nan")}
    joints = joint_angles("excavator", signals)
    assert joints == pytest.approx({"boom": math.radians(30), "arm": math.radians(-80), "bucket": math.radians(-140)})
    assert joint_angles("wheel_loader", {"LoaderLinkage.LiftAngle": 10.0}) == pytest.approx({"lift": math.radians(10)})
    assert joint_angles("crane", signals) == {} and machine_poses("crane", joints) == []
