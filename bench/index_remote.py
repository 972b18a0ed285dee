"""Benchmark: `excap index s3://...` (metadata from ranged reads, rows into an SQLite catalogue) against the floor of
a full download of the same objects, same run; prints JSON.

    python bench/index_remote.py [--episodes 40] [--duration 8] [--rounds 2]

Starts its own SeaweedFS server (`weed server -s3` on loopback, as the tests do), records one simulated episode
(`--duration` s, two 320x240 cameras at 15 fps) and uploads `--episodes` copies of it under one prefix, each with
its SHA-256 in the object's metadata (as `excap upload` leaves them). Each round indexes the prefix into a fresh
catalogue (`excap index s3://... --catalog FILE --json`: every object is read) and downloads every object in full
with boto3 (`get_object` read to the end, nothing written), in turn. Reported: bytes and requests per episode,
episodes indexed per second (median over rounds, whole command including start-up), the full download's
episodes per second, and the ratios.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.remote_episodes import put_episode  # noqa: E402
from tests.support.seaweedfs import bench_store  # noqa: E402  (the tests' server set-up)


def record_episode(folder: Path, duration: float) -> Path:
    from excap.station.sim import SimSessionOptions, run_sim_session

    return run_sim_session(SimSessionOptions(out_dir=folder, duration_s=duration, cameras=2, width=320, height=240,
                                             fps=15.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of the recorded episode")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="excap-bench-index-"))
    with bench_store(work) as (_server, s3):
        source = record_episode(work / "recorded", args.duration)
        size = source.stat().st_size
        for index in range(args.episodes):
            put_episode(s3, "bench", f"fleet/episode-{index:03d}.h5", source)
        index_s, download_s, report = [], [], {}
        for round_ in range(args.rounds):
            catalog = work / f"catalogue-{round_}.sqlite"
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "excap", "index", "s3://bench/fleet", "--catalog",
                                   str(catalog), "--json"], capture_output=True, text=True, check=True, cwd=REPO)
            index_s.append(time.perf_counter() - start)
            report = json.loads(done.stdout)
            assert len(report["added"]) == args.episodes, done.stderr
            start = time.perf_counter()
            for index in range(args.episodes):
                body = s3.get_object(Bucket="bench", Key=f"fleet/episode-{index:03d}.h5")["Body"]
                while body.read(1 << 20):
                    pass
            download_s.append(time.perf_counter() - start)
        per_episode = report["bytes_read"] / args.episodes
        index_rate = args.episodes / statistics.median(index_s)
        download_rate = args.episodes / statistics.median(download_s)
        print(json.dumps({
            "episodes": args.episodes, "episode_bytes": size, "rounds": args.rounds,
            "index_bytes_per_episode": round(per_episode), "index_requests_per_episode":
                report["requests"] / args.episodes,
            "index_fraction_of_file": round(per_episode / size, 4),
            "index_episodes_per_s": round(index_rate, 2), "index_seconds": [round(s, 2) for s in index_s],
            "download_episodes_per_s": round(download_rate, 2),
            "download_seconds": [round(s, 2) for s in download_s],
            "bytes_ratio_download_over_index": round(size / per_episode, 1),
            "speed_ratio_index_over_download": round(index_rate / download_rate, 2),
            "machine": {"nproc": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                        "python": platform.python_version()},
        }, indent=2))


if __name__ == "__main__":
    main()
