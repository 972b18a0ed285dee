"""Stopping a station's episode: the devices stop first (the cameras together, then their encoders), every frame a
camera delivered is in the episode, and each step of the stop is timed."""

import threading
from pathlib import Path

import h5py

from excap.record.recorder import Recorder
from excap.station.runtime import StationRuntime
from excap.station.session import run_station_session
from excap.station.sim import SimSessionOptions, simulated_station
from tests.support.waiting import wait_for

CAMERAS = 3


def test_every_frame_a_camera_delivered_before_the_stop_is_recorded_and_the_stop_is_timed_by_step(tmp_path):
    config = simulated_station(SimSessionOptions(out_dir=tmp_path, duration_s=None, cameras=CAMERAS, width=160,
                                                 height=120, fps=15))
    stop = threading.Event()
    runtimes: list[StationRuntime] = []
    recorders: list[Recorder] = []
    result: list[Path] = []
    worker = threading.Thread(target=lambda: result.append(run_station_session(
        config, stop, on_open=runtimes.append, on_started=recorders.append)))
    worker.start()
    try:
        wait_for(lambda: recorders and all(s.accepted > 5 for s in recorders[0].status()
                                           if s.path.startswith("cameras/")), timeout=30, message="frames")
    finally:
        stop.set()
        worker.join(timeout=60)
    assert result, "the session did not finish"
    runtime, recorder = runtimes[0], recorders[0]
    assert len(runtime.cameras) == CAMERAS
    with h5py.File(result[0], "r") as episode:
        for name, camera in runtime.cameras.items():
            assert int(episode[f"cameras/{name}/t_ns"][-1]) == camera.counters.last_t_ns, name
    steps = list(recorder.stop_steps.seconds)
    devices = [step for step in steps if step.startswith("devices/")]
    assert steps[:len(devices)] == devices  # the devices stop before the recorder's steps
    assert devices.index("devices/SimulatedCamera") < devices.index("devices/JpegEncoder")
    assert steps[len(devices):len(devices) + 3] == ["flush", "stop_hooks", "journal_writer"]
    assert steps[-1] == "journal_removal"
