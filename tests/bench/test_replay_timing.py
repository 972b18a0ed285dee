"""bench/replay_timing.py's ROS 2 part on a 2-second simulated episode: the replay reaches a subscriber node in
another process (bench/ros_receiver.py), which gets every message published, with /clock beside them."""

import math

import pytest

from excap.station.sim import SimSessionOptions, run_sim_session
from tests.support.bench_scripts import bench_script
from tests.support.requirements import require_ros

require_ros()

pytestmark = pytest.mark.slow


def test_ros_replay_reaches_a_subscriber_in_another_process_and_loses_nothing(tmp_path) -> None:
    episode = run_sim_session(SimSessionOptions(out_dir=tmp_path, duration_s=2.0, cameras=1, width=160, height=120,
                                                fps=15.0))
    ros = bench_script("replay_timing").bench_ros(episode, 1.0)
    assert ros["received"] == ros["published"] > 1000 and ros["lost_per_topic"] == {}
    assert {"cameras/side", "control", "joystick/operator"} <= set(ros["per_stream"])
    assert ros["overall"]["intervals"] > 1000 and math.isfinite(ros["overall"]["p99_ms"])
    assert ros["clock"]["messages"] > 100  # 100 Hz for the 2 s replayed
