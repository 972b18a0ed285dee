"""Benchmark: start-up time of the command line against a bare interpreter, in the same run; prints JSON.

    python bench/startup.py [--runs 15] [--episode EPISODE.h5]

Times, as whole processes, `python -c pass`, `python -m excap --help` and `python -m excap inspect EPISODE`
(the episode is recorded once with a 1 s `excap record --sim` unless one is given). The three run in turn, one
of each per round, after one warm-up round, so that a drift in the machine's speed touches them alike. Each
command's median and minimum wall time is reported, and for the excap commands the difference over the bare
interpreter (median minus median, min minus min). `met` is true when both medians over the bare interpreter
are within `target_s`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 0.3


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def record_episode(python: str, folder: Path) -> Path:
    subprocess.run([python, "-m", "excap", "record", "--sim", "--duration", "1", "--out", str(folder), "--quiet"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return next(folder.glob("*.h5"))


def measure(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    for argv in commands.values():  # warm-up: file cache, .pyc files
        wall_time(argv)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            times[name].append(wall_time(argv))
    return times


def report(commands: dict[str, list[str]], times: dict[str, list[float]], runs: int) -> dict[str, object]:
    bare_median, bare_min = statistics.median(times["bare"]), min(times["bare"])
    figures: dict[str, dict[str, object]] = {}
    for name, argv in commands.items():
        entry: dict[str, object] = {"command": " ".join(["python", *argv[1:]]),
                                    "median_s": round(statistics.median(times[name]), 4),
                                    "min_s": round(min(times[name]), 4)}
        if name != "bare":
            entry["over_bare_median_s"] = round(statistics.median(times[name]) - bare_median, 4)
            entry["over_bare_min_s"] = round(min(times[name]) - bare_min, 4)
        figures[name] = entry
    met = all(float(figures[name]["over_bare_median_s"]) <= TARGET_S for name in commands if name != "bare")
    return {"runs": runs, "commands": figures, "target_s": TARGET_S, "met": met,
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_avg_1min_start": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="counted runs of each command (default: %(default)s)")
    parser.add_argument("--episode", type=Path, default=None, help="episode to inspect (default: record one)")
    parser.add_argument("--python", default=sys.executable, help="interpreter (default: this one)")
    args = parser.parse_args()
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="excap-startup-") as folder:
        episode = args.episode or record_episode(args.python, Path(folder))
        commands = {"bare": [args.python, "-c", "pass"], "help": [args.python, "-m", "excap", "--help"],
                    "inspect": [args.python, "-m", "excap", "inspect", str(episode)]}
        times = measure(commands, args.runs)
    result = report(commands, times, args.runs)
    result["load_avg_1min_start"] = load
    result["load_avg_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
