"""Benchmark: a simulated recording at full load; prints JSON.

    python bench/record_sim.py [--duration 60] [--cameras 2] [--out DIR]

Reports achieved per-stream rates, drops, CPU use, peak and sampled RSS (to show memory stays
flat), stop latency (stop requested -> finished episode in place) and the episode size.
"""

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.episode.summary import summarize
from excap.episode.validation import validate_episode
from excap.station.sim import SimSessionOptions, run_sim_session


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="excap-bench-"))
    stop = threading.Event()
    stop_requested: list[float] = []
    rss_samples: list[tuple[float, float]] = []

    def started(_recorder: object) -> None:
        t0 = time.monotonic()

        def sample() -> None:
            while not stop.wait(5.0):
                rss_samples.append((round(time.monotonic() - t0, 1), round(rss_mb(), 1)))

        def finish() -> None:
            time.sleep(args.duration)
            stop_requested.append(time.monotonic())
            stop.set()

        threading.Thread(target=sample, daemon=True).start()
        threading.Thread(target=finish, daemon=True).start()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    path = run_sim_session(SimSessionOptions(out_dir=out, duration_s=None, cameras=args.cameras, width=args.width,
                                             height=args.height, fps=args.fps), stop, on_started=started)
    done = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    summary = summarize(path)
    streams = {s.stream: s for s in summary.streams}
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    result = {
        "benchmark": "record_sim",
        "duration_s": round(summary.duration_s, 2),
        "cameras": args.cameras,
        "resolution": f"{args.width}x{args.height}",
        "fps": args.fps,
        "rates_hz": {name: round(s.rate_hz, 1) for name, s in streams.items() if "/decoded/" not in name},
        "samples": {name: s.samples for name, s in streams.items() if "/decoded/" not in name},
        "decoded_messages": sum(1 for name in streams if "/decoded/" in name),
        "drops": summary.drop_events,
        "max_gap_ms": {name: round(s.max_gap_ms, 1) for name, s in streams.items() if "/decoded/" not in name},
        "cpu_percent_of_one_core": round(100 * cpu_s / (done - wall0), 1),
        "peak_rss_mb": round(cpu1.ru_maxrss / 1024, 1),
        "rss_mb_over_time": rss_samples,
        "stop_latency_s": round(done - stop_requested[0], 3),
        "episode_mb": round(path.stat().st_size / 1e6, 1),
        "valid": validate_episode(path) == [],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
