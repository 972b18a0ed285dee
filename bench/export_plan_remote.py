"""Benchmark: what the machine running `excap export s3://...` reads from the store to plan an export (selection
from ranged metadata reads without a catalogue, then the machine-setup check over ranged reads), against the
episodes' size; prints JSON.

    python bench/export_plan_remote.py [--duration 30] [--cameras 2] [--width 640] [--height 480] [--fps 30]

Starts its own SeaweedFS server (`weed server -s3` on loopback, as the tests do), records two simulated episodes
with the given cameras, uploads them with their SHA-256 in the objects' metadata and plans the export as the
command does (`excap.cluster.remote_export.remote_episodes`, then the layout of each selected episode). The episode
tasks (which download their own episode on their worker) are not run.
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.remote_episodes import put_folder  # noqa: E402
from tests.support.seaweedfs import bench_store  # noqa: E402  (the tests' server set-up)

REGISTRY = "operators:\n  - {operator_id: operator-bench, display_name: Bench Person, consent_to_share: true}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each recorded episode")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=int, default=30)
    args = parser.parse_args()
    from excap.cluster.remote_export import remote_episodes
    from excap.station.sim import SimSessionOptions, run_sim_session

    work = Path(tempfile.mkdtemp(prefix="excap-bench-plan-"))
    with bench_store(work) as (_server, s3):
        episodes = work / "episodes"
        for seed in (1, 2):
            run_sim_session(SimSessionOptions(out_dir=episodes, duration_s=args.duration, cameras=args.cameras,
                                              width=args.width, height=args.height, fps=args.fps, seed=seed,
                                              operator_id="operator-bench"))
        (episodes / ".excap").mkdir()
        (episodes / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
        put_folder(s3, "bench", "fleet", episodes)
        start = time.perf_counter()
        fetched, reads = remote_episodes("s3://bench/fleet", None, "bench", episodes / ".excap" / "operators.yaml")
        for episode in fetched.selection.episodes:
            fetched.layout_of(episode.path)
        seconds = time.perf_counter() - start
        count = reads.episodes
        print(json.dumps({
            "machine": platform.node(), "episode": f"{args.duration:g} s, {args.cameras} cameras "
            f"{args.width}x{args.height} at {args.fps} fps", "episodes": count,
            "episode_mb": round(reads.episode_bytes / count / 1e6, 2),
            "selection_kb_per_episode": round(reads.selection_bytes / count / 1e3, 1),
            "layout_kb_per_episode": round(reads.layout_bytes / count / 1e3, 1),
            "driver_kb_per_episode": round(reads.bytes / count / 1e3, 1),
            "driver_share": round(reads.bytes / reads.episode_bytes, 5),
            "requests_per_episode": round(reads.requests / count, 1), "plan_seconds": round(seconds, 2)}, indent=2))


if __name__ == "__main__":
    main()
