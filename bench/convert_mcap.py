"""Benchmark: `excap convert EPISODE --to mcap` speed as a real-time factor (episode seconds per second); prints JSON.

    python bench/convert_mcap.py [--duration 60] [--episode EPISODE.h5] [--profile foxglove ros2]

Records a simulated episode (two 640x480 cameras at 30 fps, the simulated excavator's CAN traffic, joystick and
commands) unless one is given, then converts it to each profile, each in a fresh process. Reports per profile:
wall and CPU seconds of the conversion (after the imports), real-time factor (episode duration / wall time),
messages, output size, and the converting process's resident memory after its imports and at its peak (the episode
is read in blocks of rows, so the difference does not grow with the episode's length).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.station.sim import SimSessionOptions, run_sim_session

CONVERTERS = {"foxglove": "excap.convert.mcap_foxglove:episode_to_foxglove_mcap",
              "ros2": "excap.convert.mcap_ros2:episode_to_ros2_mcap"}
CONVERT = """
import importlib, json, resource, sys, time
from pathlib import Path
module, _, name = sys.argv[1].partition(":")
convert = getattr(importlib.import_module(module), name)
def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6
def peak_mb():  # VmHWM: this program's peak (ru_maxrss would count the forking parent's memory)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1000
before = rss_mb()
wall, cpu = time.perf_counter(), time.process_time()
report = convert(Path(sys.argv[2]), Path(sys.argv[3]))
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "duration_s": report.duration_s,
                  "messages": sum(report.messages.values()), "topics": len(report.messages),
                  "rss_after_imports_mb": before,
                  "peak_rss_mb": peak_mb()}))
"""


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
            done = subprocess.run([sys.executable, "-c", CONVERT, CONVERTERS[profile], str(episode), str(out)],
                                  capture_output=True, text=True, check=True)
            measured = json.loads(done.stdout)
            duration = measured.pop("duration_s")
            results[profile] = {key: round(value, 3) if isinstance(value, float) else value
                                for key, value in measured.items()}
            results[profile]["real_time_factor"] = round(duration / measured["wall_s"], 1)
            results[profile]["cpu_real_time_factor"] = round(duration / measured["cpu_s"], 1)
            results[profile]["output_mb"] = round(out.stat().st_size / 1e6, 1)
        print(json.dumps({
            "episode_duration_s": round(duration, 2), "episode_mb": round(episode.stat().st_size / 1e6, 1),
            "profiles": results, "cpus": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "machine": platform.machine(), "python": platform.python_version(),
        }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
