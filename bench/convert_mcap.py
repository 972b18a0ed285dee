"""Benchmark: `excap convert EPISODE --to mcap` speed as a real-time factor (episode seconds per second); prints JSON.

    python bench/convert_mcap.py [--duration 60] [--episode EPISODE.h5] [--profile foxglove ros2]

Records a simulated episode (two 640x480 cameras at 30 fps, the simulated excavator's CAN traffic, joystick and
commands) unless one is given, then converts it to each profile in this process, one after the other. Reports per
profile: wall and CPU seconds, real-time factor (episode duration / wall time), messages, input and output sizes and
the process's peak RSS after the conversion (the reader works in blocks of rows, so it does not grow with length).
"""

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.convert.mcap_foxglove import episode_to_foxglove_mcap
from excap.convert.mcap_ros2 import episode_to_ros2_mcap
from excap.station.sim import SimSessionOptions, run_sim_session

CONVERTERS = {"foxglove": episode_to_foxglove_mcap, "ros2": episode_to_ros2_mcap}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of simulated recording (default 60)")
    parser.add_argument("--episode", type=Path, default=None, help="convert this episode instead of recording one")
    parser.add_argument("--profile", nargs="+", choices=sorted(CONVERTERS), default=sorted(CONVERTERS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="excap-bench-convert-") as tmp:
        folder = Path(tmp)
        episode = args.episode or run_sim_session(SimSessionOptions(out_dir=folder, duration_s=args.duration))
        results: dict[str, object] = {}
        for profile in args.profile:
            out = folder / f"episode.{profile}.mcap"
            wall, cpu = time.perf_counter(), time.process_time()
            report = CONVERTERS[profile](episode, out)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[profile] = {
                "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "real_time_factor": round(report.duration_s / wall, 1),
                "messages": sum(report.messages.values()), "topics": len(report.messages),
                "output_mb": round(out.stat().st_size / 1e6, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            }
        print(json.dumps({
            "episode_duration_s": round(report.duration_s, 2), "episode_mb": round(episode.stat().st_size / 1e6, 1),
            "profiles": results, "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "machine": platform.machine(), "python": platform.python_version(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
