"""bench/timing_truth.py on a 2-second simulated session: every recorded row of the simulated devices is paired
with the simulator's truth stamp, none recorded before it was produced, the percentiles finite."""

import math

import numpy as np
import pytest

from excap.drivers.sim import truth
from excap.episode.reader import EpisodeReader
from tests.support.bench_scripts import bench_script

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["excavator", "wheel_loader"])
def test_every_recorded_row_matches_its_truth(kind: str, tmp_path) -> None:
    timing = bench_script("timing_truth")
    episode, matched, overwritten = timing.record_with_truth(kind, tmp_path, 2.0, 1, 160, 120, 15.0)
    assert overwritten == 0 and truth.active() is None
    with EpisodeReader(episode) as reader:
        can = reader.stream("/can/can0")
        assert np.all(can.column("t_device_ns") > 0)  # every frame with the bus's stamp, the station's own too
        rows = {"joystick": len(reader.stream("/joystick/operator")),
                "camera": sum(len(reader.stream(p)) for p in reader.paths("camera")), "all_can": len(can)}
    assert set(matched) == {"can", "joystick", "camera"}
    # the machine's frames are matched; the rest are the station's command frames, back from the bus in wire order
    assert 0 < matched["can"].recorded_ns.size < rows["all_can"]
    rows["can"] = matched["can"].recorded_ns.size
    for name, m in matched.items():
        assert m.unmatched == 0, name
        assert m.recorded_ns.size == rows[name] > 0, name
        assert np.all(m.errors_ms >= 0), name  # never recorded before it was produced
    report = timing.truth_report(matched)
    for name in ("can", "joystick", "camera"):
        assert math.isfinite(report[name]["p99_ms"]) and report[name]["matched"] == matched[name].recorded_ns.size


def test_replay_interval_figures_of_can_and_a_field_for_ros() -> None:
    replay = bench_script("timing_truth").replay_figures(2.0)
    assert replay["can"]["intervals"] > 100 and replay["can"]["frames_received"] == replay["can"]["frames_sent"]
    assert math.isfinite(replay["can"]["p99_ms"])
    assert replay["ros2"]["p99_ms"] is None and replay["ros2"]["target_p99_ms"] == 2.0
