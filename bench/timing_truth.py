"""Benchmark: the error of every recorded `t_ns` against the simulator's truth; prints JSON.

    python bench/timing_truth.py [--duration 30] [--machines excavator,wheel_loader] [--cameras 2]
                                 [--replay-duration 20] [--no-replay]

Records a simulated session per machine kind with the simulator's truth stamps switched on
(`excap.drivers.sim.truth`: the simulated machine's send time of each J1939 frame, the scripted joystick's time
of reading the sticks, the simulated camera's capture time), pairs each recorded row with its stamp (CAN frames
by id and data in order, joystick samples and camera frames by their device time) and reports recorded minus
true time in milliseconds (p50 / p99 / max) per stream kind, against the targets: CAN and joystick p99 < 1 ms,
camera p99 < 2 ms. Then the replay interval error of CAN frames (`bench/replay_timing.py`, p99 < 1 ms) and a
field for ROS 2 replay (p99 < 2 ms, measured by `bench/replay_timing.py` with rclpy).
"""

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from excap.drivers.sim import truth
from excap.drivers.sim.machines import sim_machine
from excap.episode.reader import EpisodeReader
from excap.station.sim import SIM_BUS, SIM_JOYSTICK, SimSessionOptions, run_sim_session

TARGETS_P99_MS = {"can": 1.0, "joystick": 1.0, "camera": 2.0}
REPLAY_TARGETS_P99_MS = {"can": 1.0, "ros2": 2.0}
PROFILES = {"excavator": "excavator_20t", "wheel_loader": "wheel_loader_20t"}


def percentiles(errors_ms: np.ndarray) -> dict[str, Any]:
    if errors_ms.size == 0:
        return {"samples": 0}
    return {"samples": int(errors_ms.size), "p50_ms": round(float(np.percentile(errors_ms, 50)), 4),
            "p99_ms": round(float(np.percentile(errors_ms, 99)), 4), "max_ms": round(float(errors_ms.max()), 4),
            "min_ms": round(float(errors_ms.min()), 4)}


def match_episode(episode: Path, log: truth.TruthLog) -> dict[str, truth.Matched]:
    """Every recorded row of the simulated devices paired with its truth stamp, by stream kind."""
    matched: dict[str, truth.Matched] = {}
    with EpisodeReader(episode) as reader:
        can_stamps = log.stamps(truth.CAN, "machine")
        machine_ids = {s.key[0] for s in can_stamps}  # type: ignore[index]
        stream = reader.stream(f"/can/{SIM_BUS}")
        ids, dlcs, data = stream.column("id"), stream.column("dlc"), stream.column("data")
        rows = [i for i in range(len(ids)) if int(ids[i]) in machine_ids]  # the command frames are the station's
        keys = [(int(ids[i]), bytes(data[i][:dlcs[i]])) for i in rows]
        matched["can"] = truth.match_in_order(can_stamps, keys, stream.t_ns[rows].tolist())
        joystick = reader.stream(f"/joystick/{SIM_JOYSTICK}")
        matched["joystick"] = truth.match_by_key(log.stamps(truth.JOYSTICK, SIM_JOYSTICK),
                                                 joystick.column("t_device_ns").tolist(), joystick.t_ns.tolist())
        cameras = [truth.match_by_key(log.stamps(truth.CAMERA, path.rsplit("/", 1)[-1]),
                                      reader.stream(path).column("t_device_ns").tolist(),
                                      reader.stream(path).t_ns.tolist())
                   for path in reader.paths("camera")]
        if cameras:
            matched["camera"] = truth.Matched(np.concatenate([m.recorded_ns for m in cameras]),
                                              np.concatenate([m.truth_ns for m in cameras]),
                                              sum(m.unmatched for m in cameras))
    return matched


def recorded_rows(episode: Path) -> dict[str, int]:
    """Rows of the simulated devices' streams in the episode (the CAN rows without the station's own frames are
    counted by `match_episode`'s matched + unmatched)."""
    with EpisodeReader(episode) as reader:
        return {"joystick": len(reader.stream(f"/joystick/{SIM_JOYSTICK}")),
                "camera": sum(len(reader.stream(p)) for p in reader.paths("camera"))}


def truth_report(matched: dict[str, truth.Matched]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind, m in matched.items():
        figures = percentiles(m.errors_ms)
        target = TARGETS_P99_MS[kind]
        report[kind] = {**figures, "matched": int(m.recorded_ns.size), "unmatched": m.unmatched,
                        "target_p99_ms": target, "pass": bool(m.unmatched == 0 and figures.get("p99_ms", 1e9) < target)}
    return report


def record_with_truth(kind: str, out: Path, duration_s: float, cameras: int, width: int, height: int,
                      fps: float) -> tuple[Path, dict[str, truth.Matched], int]:
    with truth.truth_log(capacity=4_000_000) as log:
        episode = run_sim_session(SimSessionOptions(out_dir=out, duration_s=duration_s, cameras=cameras,
                                                    width=width, height=height, fps=fps, profile=PROFILES[kind]))
        return episode, match_episode(episode, log), log.overwritten


def replay_figures(duration_s: float) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("replay_timing", Path(__file__).with_name("replay_timing.py"))
    assert spec is not None and spec.loader is not None
    replay_timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replay_timing)
    out = Path(tempfile.mkdtemp(prefix="excap-truth-replay-"))
    episode = run_sim_session(SimSessionOptions(out_dir=out, duration_s=duration_s, cameras=1))
    can = replay_timing.bench_can(episode, 1.0)
    [can_stream] = [v for k, v in can["per_stream"].items() if k.strip("/").startswith("can/") and "/decoded/" not in k]
    p99 = can_stream.get("p99_ms")
    return {"can": {**can_stream, "frames_received": can["frames_received"], "frames_sent": can["frames_sent"],
                    "target_p99_ms": REPLAY_TARGETS_P99_MS["can"],
                    "pass": p99 is not None and p99 < REPLAY_TARGETS_P99_MS["can"]},
            "ros2": {"p99_ms": None, "target_p99_ms": REPLAY_TARGETS_P99_MS["ros2"], "pass": None,
                     "measured_by": "python bench/replay_timing.py (ros section)"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--machines", default="excavator,wheel_loader")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--replay-duration", type=float, default=20.0)
    parser.add_argument("--no-replay", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="excap-truth-"))
    result: dict[str, Any] = {"benchmark": "timing_truth", "duration_s": args.duration, "cameras": args.cameras,
                              "resolution": f"{args.width}x{args.height}", "fps": args.fps,
                              "load_avg_1min_start": round(os.getloadavg()[0], 2), "machines": {}}
    for kind in args.machines.split(","):
        sim_machine(kind)  # a ConfigError naming the known kinds for a wrong one
        episode, matched, overwritten = record_with_truth(kind, out / kind, args.duration, args.cameras,
                                                          args.width, args.height, args.fps)
        result["machines"][kind] = {"episode": str(episode), "truth_overwritten": overwritten,
                                    "recorded_rows": recorded_rows(episode), **truth_report(matched)}
    if not args.no_replay:
        result["replay_interval_error"] = replay_figures(args.replay_duration)
    result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
