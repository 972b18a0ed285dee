"""Benchmark: the fleet report's episodes per second on each engine, in the same run; prints JSON.

    python bench/cluster_report.py [--episodes 24] [--duration 2.0] [--workers 2]

One short simulated recording is copied `--episodes` times into a temporary folder; `excap.cluster.fleet_report`
then checks the folder on the serial engine, on `--workers` local processes and on a local Ray with `--workers`
worker slots (the fleet extra). Each engine's time includes starting its workers (and Ray) and listing the folder,
as `excap fleet-report` does; the reports must be equal, else the benchmark fails.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from excap.cluster.fleet_report import fleet_report
from excap.cluster.options import EngineOptions, make_executor
from excap.station.sim import SimSessionOptions, run_sim_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per recording")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="excap-bench-cluster-"))
    try:
        one = run_sim_session(SimSessionOptions(out_dir=folder / "src", duration_s=args.duration, cameras=1,
                                                width=160, height=120, fps=10, seed=1))
        episodes = folder / "episodes"
        episodes.mkdir()
        for index in range(args.episodes):
            shutil.copyfile(one, episodes / f"ep{index:04d}.h5")
        engines = {"serial": EngineOptions("serial"), f"processes x{args.workers}": EngineOptions(
            "processes", args.workers), f"ray x{args.workers}": EngineOptions("ray", args.workers)}
        results, reports = {}, []
        for name, options in engines.items():
            started = time.perf_counter()
            with make_executor(options, "bench") as executor:
                report = fleet_report(str(episodes), executor)
            seconds = time.perf_counter() - started
            reports.append(report.as_json())
            results[name] = {"seconds": round(seconds, 2), "episodes_per_s": round(args.episodes / seconds, 2)}
        if any(report != reports[0] for report in reports):
            raise SystemExit("bench: the engines' reports differ")
        print(json.dumps({"benchmark": "fleet report", "episodes": args.episodes, "episode_s": args.duration,
                          "episode_bytes": one.stat().st_size, "cpus": os.cpu_count(),
                          "python": platform.python_version(), "engines": results}, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
