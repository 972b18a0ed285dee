"""The excap recorder under test, in its own process: the simulated station as `excap record --sim` builds it, with
its cameras replaced by shared-memory cameras (`shm:<ring>`) fed by the frame producer, the scripted operator's
joystick at 200 Hz and the CAN bus topped up to 2,000 frames/s (`excap.bench.can_load`); or cameras only.

The episode is recorded by `run_station_session`, the path `excap record` takes. Measured: CPU of this process from
the episode's start to the stop request, peak RSS, stop request to the finished episode in place, and from the
file: frames kept and lost (sequence gaps, via `t_device_ns` = seq x frame period) per camera, excap's own drop
counters, and the achieved CAN and joystick rates.
"""

import dataclasses
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from excap.bench.can_load import CanLoad, dbc_frames
from excap.bench.measure import RecorderResult, RssSampler, cpu_s, peak_rss_mb, sequence_gaps
from excap.drivers.camera.config import CameraConfig
from excap.drivers.camera.shm_camera import SHM_CAMERA_PREFIX
from excap.record.recorder import Recorder
from excap.station.config import CommandSettings, StationConfig
from excap.station.runtime import StationRuntime
from excap.station.session import run_station_session
from excap.station.sim import SimSessionOptions, simulated_station

CAN_TARGET_HZ = 2000.0
SIM_CAN_HZ = 856.0
"""The simulated excavator's own traffic and the cab-joystick command frames (BENCHMARKS.md, record_sim)."""
JOYSTICK_HZ = 200.0


def bench_station(out_dir: Path, rings: list[str], fps: float, full_load: bool) -> StationConfig:
    config = simulated_station(SimSessionOptions(out_dir=out_dir, cameras=0, joystick_rate_hz=JOYSTICK_HZ))
    cameras = [CameraConfig(name=f"cam{i:02d}", source=f"{SHM_CAMERA_PREFIX}{ring}", fps=fps)
               for i, ring in enumerate(rings)]
    if full_load:
        return dataclasses.replace(config, cameras=cameras)
    return dataclasses.replace(config, cameras=cameras, simulated_machine=False, joysticks=[], cans=[],
                               axis_inputs={}, button_inputs={}, command=CommandSettings())


def run_excap(rings: list[str], seconds: float, fps: float, full_load: bool, out_dir: Path | None = None,
              jpeg_quality: int = 90) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="excap-bench-", dir=out_dir))
    config = bench_station(work, rings, fps, full_load)
    stop = threading.Event()
    marks: dict[str, float] = {}
    holder: dict[str, Any] = {}
    load: list[CanLoad] = []

    def opened(runtime: StationRuntime) -> None:
        holder["runtime"] = runtime
        if full_load:
            frames = dbc_frames(config.profile.dbc_paths)
            load.append(CanLoad(str(config.cans[0].channel), frames, CAN_TARGET_HZ - SIM_CAN_HZ).start())

    def started(recorder: Recorder) -> None:
        holder["recorder"] = recorder
        marks["cpu0"], marks["t0"] = cpu_s(), time.monotonic()
        holder["rss"] = RssSampler()

        def finish() -> None:
            time.sleep(seconds)
            marks["cpu1"], marks["t_stop"] = cpu_s(), time.monotonic()
            stop.set()

        threading.Thread(target=finish, name="bench-stop", daemon=True).start()

    try:
        path = run_station_session(config, stop, on_started=started, on_open=opened, jpeg_quality=jpeg_quality,
                                   wait_devices_s=10.0)
        t_done = time.monotonic()
        ended_early = "t_stop" not in marks  # the recorder stopped itself (a fault such as the disk reserve)
        if ended_early:
            marks["cpu1"], marks["t_stop"] = cpu_s(), t_done
        for generator in load:
            generator.stop()
        result = RecorderResult("excap" if full_load else "excap (cameras only)", len(rings),
                                round(marks["t_stop"] - marks["t0"], 2))
        if ended_early:
            result.broke = f"recording ended after {result.seconds} s: {holder['recorder'].fault or 'stopped'}"
        result.peak_rss_mb = round(peak_rss_mb(), 1)
        result.rss_mb_over_time = holder["rss"].stop()
        result.stop_to_usable_s = round(t_done - marks["t_stop"], 3)
        result.extra["stop_steps_s"] = stop_breakdown(holder["recorder"], t_done - marks["t_stop"])
        result.file_mb = round(path.stat().st_size / 1e6, 1)
        _read_episode(path, result, holder["runtime"])
        result.finish(marks["cpu1"] - marks["cpu0"])
        if load:
            result.extra["can_generated_frames"] = load[0].sent
        return result.as_dict()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stop_breakdown(recorder: Recorder, stop_to_finished_s: float) -> dict[str, float]:
    """Stop request to finished episode by step (`Recorder.stop_steps`, in order); `other`: the rest (the session
    noticing the request, the steps between the timed ones)."""
    steps = {name: round(seconds, 4) for name, seconds in recorder.stop_steps.seconds.items()}
    steps["other"] = round(stop_to_finished_s - recorder.stop_steps.total_s, 4)
    return steps


def _read_episode(path: Path, result: RecorderResult, runtime: StationRuntime) -> None:
    with h5py.File(path, "r") as episode:
        duration = float(episode.attrs["duration_s"])
        counted = {"recorder_queue": 0, "encoder_events": 0, "camera_ring": 0}
        usable = True
        for name, group in episode["cameras"].items():
            t_device = group["t_device_ns"][()]
            period_ns = round(1e9 / float(group.attrs["nominal_fps"]))
            result.lost_per_stream.append(sequence_gaps(np.rint(t_device / period_ns)))
            result.frames_kept += len(t_device)
            counted["recorder_queue"] += int(group.attrs.get("dropped", 0))
            counted["camera_ring"] += runtime.cameras[name].counters.dropped
            frames = group["frames"]
            usable = usable and len(frames) > 0 and cv2.imdecode(frames[len(frames) - 1], cv2.IMREAD_COLOR) is not None
        kinds = episode["events/kind"][()]
        counted["encoder_events"] = int(sum(1 for k in kinds if (k.decode() if isinstance(k, bytes) else k) == "drop"))
        rates = {}
        for section in ("can", "joystick"):
            if section in episode:
                for name, group in episode[section].items():
                    rates[f"{section}/{name}"] = round(len(group["t_ns"]) / duration, 1)
                    counted["recorder_queue"] += int(group.attrs.get("dropped", 0))
        result.usable = usable
        result.extra.update({"excap_drop_counters": counted, "rates_hz": rates})
