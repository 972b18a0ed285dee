"""Benchmark: excap head to head with the other ways to record cameras, the most streams it records with zero drops,
and the path figures; prints one JSON.

    python bench/capture_h2h.py [--compare-streams 4] [--seconds 60] [--search-seconds 15] [--confirm-seconds 60]
                                [--long-seconds 600] [--skip PART ...]

Parts (each can be skipped with `--skip`):
- `compare`: `excap bench capture --compare` at `--compare-streams` 640x480 streams for `--seconds`: excap (2,000 CAN
  frames/s, 200 Hz joystick), excap cameras only, the floor, ALOHA-, LeRobot- and MCAP-style recorders, each in its
  own process on the same frame producer (`excap.bench.capture`).
- `search`: for 640x480 and 1280x720, excap with the full load at growing stream counts for `--search-seconds` each
  (doubling from `--start`, then halving the interval between the last count without drops and the first with);
  the largest count without a drop is then run for `--confirm-seconds`.
- `long`: excap with 4 cameras (640x480) for `--long-seconds`: RSS over time and stop to finished episode, with the
  seconds of each step of the stop in `extra.stop_steps_s` (`Recorder.stop_steps`: the devices by kind, the encoders'
  flush, the writers, the last rows' journal fsync, HDF5 append and fsync, the final attributes, the close, the fsync
  and rename, the journal's removal; `other`: the rest).
- `paths`: the CAN path per frame, the joystick-to-CAN command latency (at the profile's 50 Hz and at 200 Hz) and
  `excap --help` over a bare interpreter (`bench/startup.py`).

Every run records the load average at its start.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.bench.capture import in_process, machine, run_capture_bench, run_excap_streams, zero_drop
from excap.bench.frames import FrameProducer
from excap.bench.paths import can_path, command_latency

SIZES = {"640x480": (640, 480), "1280x720": (1280, 720)}
TARGETS = {"640x480": 20, "1280x720": 8}


def excap_run(streams: int, size: tuple[int, int], seconds: float, out: Path | None) -> dict[str, Any]:
    with FrameProducer(streams, *size) as producer:
        run = run_excap_streams(producer.rings, seconds, 30.0, True, out)
    run["producer"] = producer.report
    return run


def search(size_name: str, start: int, limit: int, seconds: float, confirm_s: float,
           out: Path | None) -> dict[str, Any]:
    size = SIZES[size_name]
    tried: dict[int, dict[str, Any]] = {}

    def attempt(count: int) -> bool:
        run = excap_run(count, size, seconds, out)
        run.pop("rss_mb_over_time", None)
        tried[count] = run
        print(f"search {size_name}: {count} streams: lost {run.get('frames_lost')}, "
              f"error {run.get('error', '-')}", file=sys.stderr, flush=True)
        return zero_drop(run)

    good, bad = 0, None
    count = start
    while count <= limit:
        if attempt(count):
            good, count = count, count * 2
        else:
            bad = count
            break
    if bad is None and good < limit:
        bad = limit + 1
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if attempt(middle):
            good = middle
        else:
            bad = middle
    result: dict[str, Any] = {"size": size_name, "search_seconds": seconds, "most_zero_drop_streams": good,
                              "first_dropping": bad, "target": TARGETS[size_name],
                              "runs": [tried[c] for c in sorted(tried)]}
    if good and confirm_s > 0:
        confirm = excap_run(good, size, confirm_s, out)
        result["confirm"] = {"streams": good, "seconds": confirm_s, "zero_drop": zero_drop(confirm), "run": confirm}
    held = result.get("confirm", {}).get("zero_drop", good > 0)
    result["met"] = bool(good >= TARGETS[size_name] and held)
    return result


def startup() -> dict[str, Any]:
    script = Path(__file__).with_name("startup.py")
    out = subprocess.run([sys.executable, str(script), "--runs", "15"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def paths() -> dict[str, Any]:
    load = [round(x, 2) for x in os.getloadavg()]
    result: dict[str, Any] = {"load_average_at_start": load}
    result["can_path"] = in_process("can_path", 120, can_path, 20_000)
    result["command_latency_50hz"] = in_process("latency", 120, command_latency, 300)
    result["command_latency_200hz"] = in_process("latency", 120, command_latency, 300, 200.0)
    result["command_latency_50hz_send_on_change"] = in_process("latency", 120, command_latency, 300, None, 0, True)
    result["startup"] = startup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare-streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0, help="each recorder in the comparison")
    parser.add_argument("--search-seconds", type=float, default=15.0)
    parser.add_argument("--confirm-seconds", type=float, default=60.0)
    parser.add_argument("--start", type=int, default=4, help="first stream count of the search")
    parser.add_argument("--limit", type=int, default=48, help="largest stream count the search tries")
    parser.add_argument("--long-seconds", type=float, default=600.0)
    parser.add_argument("--ram-cap-mb", type=float, default=2048.0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["compare", "search", "long", "paths"])
    parser.add_argument("--out", type=Path, default=None, help="folder for the recordings (default: temporary)")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "capture_h2h", "machine": machine()}
    if "compare" not in args.skip:
        result["compare"] = run_capture_bench(streams=args.compare_streams, seconds=args.seconds, compare=True,
                                              ram_cap_mb=args.ram_cap_mb, out_dir=args.out)
    if "search" not in args.skip:
        result["search"] = [search(name, args.start, args.limit, args.search_seconds, args.confirm_seconds, args.out)
                            for name in SIZES]
    if "long" not in args.skip:
        result["long"] = excap_run(4, SIZES["640x480"], args.long_seconds, args.out)
    if "paths" not in args.skip:
        result["paths"] = paths()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
