"""`excap bench capture`: a short run of the real recorder on frames produced by another process prints the JSON
a station owner reads (frames, losses, CPU per frame, peak RSS, stop-to-file time and its steps, load, CAN and
joystick rates)."""

import json
import subprocess

import pytest

from tests.support.commands import excap_command
from tests.support.paths import REPO


def test_bench_capture_prints_the_measured_run():
    result = subprocess.run(excap_command("bench", "capture", "--seconds", "2", "--streams", "1", "--size", "320x240"),
                            capture_output=True, text=True, cwd=REPO, timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["benchmark"], report["streams"], report["size"], report["seconds"]) == ("capture", 1, "320x240", 2)
    assert report["producer"]["frames_written"] > 0
    [run] = report["runs"]
    assert run["recorder"] == "excap" and run["usable"] is True
    assert 10 <= run["frames_kept"] <= 90  # at most 2 s at 30 fps (and a margin), fewer on a loaded machine
    assert run["frames_lost"] == sum(run["lost_per_stream"]) and len(run["lost_per_stream"]) == 1
    assert run["cpu_ms_per_frame"] > 0 and run["cpu_s"] > 0
    assert 50 < run["peak_rss_mb"] < 2000
    assert 0 < run["stop_to_usable_s"] < 10
    steps = run["extra"]["stop_steps_s"]  # stop to finished episode by step, the rest in `other`
    assert steps["journal_removal"] >= 0 and "last_rows/hdf5_fsync" in steps and "devices/SharedMemoryCamera" in steps
    assert sum(steps.values()) == pytest.approx(run["stop_to_usable_s"], abs=0.01)
    assert len(run["load_average_at_start"]) == 3
    assert set(run["extra"]["excap_drop_counters"]) == {"recorder_queue", "encoder_events", "camera_ring"}
    rates = run["extra"]["rates_hz"]
    assert rates["can/can0"] > 200 and rates["joystick/operator"] > 20  # 2,000 and 200 Hz asked; loose for load


def test_bench_capture_refuses_a_bad_size():
    result = subprocess.run(excap_command("bench", "capture", "--size", "640by480"), capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert result.returncode == 2
    assert "--size: must be WIDTHxHEIGHT" in result.stderr
