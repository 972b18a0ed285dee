"""Benchmark: LeRobot export speed and memory against its floor; prints JSON.

    python bench/export.py [--cache DIR] [--codecs libx264,libsvtav1] [--long-minutes 10] [--skip-long]
    python bench/export.py --prepare-only      # record the simulated episodes into the cache and stop

Episodes are simulated recordings (2 cameras, VGA, 30 fps, like the station's default), recorded once into the
cache folder (real time: `pair` is two 30 s episodes, `long` one episode of --long-minutes) and reused.

For each codec:
- floor: decoding the episodes' JPEG frames plus encoding the same frames with the export's codec settings,
  nothing else (frames preloaded into memory, one thread per camera; all cameras of all episodes at once, and
  one episode after the other: the faster of the two);
- export: `excap export --format lerobot --fps 30 --vcodec CODEC --engine E --workers N` of `pair` as a child
  process, for the engine `processes` with N = 1 and 2 and a local Ray (`ray`, the fleet extra) with N = 2: wall
  and CPU time, throughput (episode seconds per second = real-time factor), ratios
  export/floor of wall and of CPU time (the CPU ratio holds on a busy machine), peak RSS
  of the largest process (ru_maxrss: the export process or one of its workers, through a small launcher) and the
  highest sum over the process tree (sampled every 50 ms; pages shared after fork count once per process);
- long: the export of the `long` episode (1 worker): the peak RSS that shows memory does not grow with the
  episode's length.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]
REGISTRY = """operators:
  - operator_id: bench-operator
    display_name: Bench Operator
    consent_to_share: true
    consent_date: 2026-01-01
"""
FPS = 30
CAMERAS = 2
WIDTH, HEIGHT = 640, 480


def record(folder: Path, seconds: float, seeds: list[int]) -> Path:
    """`folder` with one simulated episode per seed (recorded once; kept between runs)."""
    done = folder / ".complete"
    if done.is_file():
        return folder
    from excap.station.sim import SimSessionOptions, run_sim_session

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for seed in seeds:
        run_sim_session(SimSessionOptions(out_dir=folder, duration_s=seconds, cameras=CAMERAS, width=WIDTH,
                                          height=HEIGHT, fps=FPS, seed=seed, operator_id="bench-operator",
                                          task="dig-and-load", stale_timeout_s=1.0))
    (folder / ".excap").mkdir(exist_ok=True)
    (folder / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
    done.write_text("ok\n")
    return folder


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as handle:
                rss[int(entry)] = int(handle.read().split()[1]) * page
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


ENGINE_RUNS = (("processes", 1), ("processes", 2), ("ray", 2))


def run_export(folder: Path, codec: str, workers: int, baseline: Path | None = None,
               engine: str = "processes") -> dict[str, object]:
    """One `excap export` in a child process: wall time, peak RSS (largest process and whole tree). `baseline`:
    a folder holding an `excap` package of an earlier version to run instead (one worker, no per-part times)."""
    out = Path(tempfile.mkdtemp(prefix="excap-bench-export-")) / "dataset"
    command = [sys.executable, "-m", "excap", "export", str(folder), "--format", "lerobot", "--out", str(out),
               "--fps", str(FPS), "--vcodec", codec, "--no-progress"]
    command += [] if baseline else ["--engine", engine, "--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(baseline or REPO)}
    # a small launcher runs the export: its RUSAGE_CHILDREN peak is that of the export or one of its workers
    # (a process started straight from this one would inherit this process's peak through fork and exec)
    launcher = [sys.executable, "-c", "import json, resource, subprocess, sys; "
                "code = subprocess.run(sys.argv[1:]).returncode; "
                "print(json.dumps({'code': code, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN)"
                ".ru_maxrss}), file=sys.stderr); sys.exit(code)", *command]
    started = time.monotonic()
    process = subprocess.Popen(launcher, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak_tree = 0
    finished = threading.Event()

    def sample() -> None:
        nonlocal peak_tree
        while not finished.wait(0.05):
            peak_tree = max(peak_tree, tree_rss_bytes(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    finished.set()
    sampler.join()
    stdout = process.stdout.read().decode() if process.stdout else ""
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"export failed: {stderr.strip()}")
    peak_kb = json.loads(stderr.strip().splitlines()[-1])["maxrss_kb"]
    info = json.loads((out / "meta" / "info.json").read_text())
    parts = json.loads((out / ".excap-export" / "manifest.json").read_text())["done"].values()
    stages: dict[str, float] = {}
    for part in parts:
        for stage, seconds in part.get("stage_seconds", {}).items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    parts_wall = sum(part.get("seconds", 0.0) for part in parts)
    video_bytes = sum(p.stat().st_size for p in (out / "videos").rglob("*.mp4"))
    shutil.rmtree(out.parent, ignore_errors=True)
    episode_s = info["total_frames"] / info["fps"]
    return {"engine": "baseline" if baseline else engine, "workers": workers, "episodes": info["total_episodes"],
            "episode_s": round(episode_s, 2), "wall_s": round(wall, 2),
            "episode_s_per_s": round(episode_s / wall, 2),  # = the real-time factor
            "cpu_episode_s_per_cpu_s": round(episode_s / (usage.ru_utime + usage.ru_stime), 3),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb_largest_process": round(peak_kb / 1024, 1),
            "peak_rss_mb_process_tree": round(peak_tree / 1e6, 1),
            "video_mb": round(video_bytes / 1e6, 2), "summary": stdout.strip(),
            # where the time went: each part's wall time (summed over parts) and, inside the parts, per stage
            # (camera stages summed over the cameras' threads, which run at the same time)
            "parts_wall_s": round(parts_wall, 2), "outside_parts_s": round(wall - parts_wall / workers, 2),
            "part_stages_s": {k: round(v, 2) for k, v in sorted(stages.items())}}


def load_frames(folder: Path) -> list[tuple[list[bytes], list[int]]]:
    """Per episode and camera: the JPEG frames the export reads and the source frame each step shows."""
    from excap.datasets.alignment import align
    from excap.datasets.frames import episode_layout
    from excap.episode.reader import EpisodeReader

    cameras = []
    for path in sorted(folder.glob("*.h5")):
        layout = episode_layout(path)
        with EpisodeReader(path) as reader:
            alignment, streams = align(reader, FPS, layout)
            for name, stream in streams.items():
                rows = alignment.camera_rows[name]
                unique = sorted(set(rows.tolist()))
                position = {row: i for i, row in enumerate(unique)}
                cameras.append(([stream.jpeg(row) for row in unique], [position[int(r)] for r in rows]))
    return cameras


def floor(cameras: list[tuple[list[bytes], list[int]]], codec: str) -> tuple[float, float]:
    """Wall seconds to decode the JPEG frames and encode the same frames with the export's video writer (same
    codec settings, same conversion to the encoder's I420, same codec threads), each camera on its own thread,
    nothing else (frames preloaded, the files written to a temporary folder).
    Measured twice, all cameras of all episodes at once and one episode (its cameras at once) after the other;
    returns the faster: (wall seconds, CPU seconds)."""
    import cv2
    import numpy as np

    from excap.datasets.export.lerobot import codec_threads
    from excap.datasets.video import VideoWriter

    folder = Path(tempfile.mkdtemp(prefix="excap-bench-floor-"))
    threads = codec_threads(CAMERAS)

    def one_camera(number: int, jpegs: list[bytes], steps: list[int]) -> None:
        with VideoWriter(folder / f"{number}.mp4", WIDTH, HEIGHT, FPS, codec, threads=threads) as writer:
            decoded, shown = None, -1
            for index in steps:
                if index != shown:
                    decoded = cv2.imdecode(np.frombuffer(jpegs[index], np.uint8), cv2.IMREAD_COLOR)
                    shown = index
                writer.write_bgr(decoded)

    import resource

    def run(groups: list[list[int]]) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        for group in groups:
            workers = [threading.Thread(target=one_camera, args=(n, *cameras[n])) for n in group]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        elapsed = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)

    everything = [list(range(len(cameras)))]
    per_episode = [list(range(n, n + CAMERAS)) for n in range(0, len(cameras), CAMERAS)]
    best = min(run(everything), run(per_episode))  # the faster of the two ways to fill the cores
    shutil.rmtree(folder, ignore_errors=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "excap-bench-export")
    parser.add_argument("--codecs", default="libx264,libsvtav1")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--long-codec", default="libx264")
    parser.add_argument("--skip-long", action="store_true")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also time an earlier excap (DIR holds its `excap` package) on the same episodes")
    parser.add_argument("--baseline-codecs", default="libsvtav1", help="codecs the baseline is timed with")
    args = parser.parse_args()
    pair = record(args.cache / "pair", 30.0, [1, 2])
    long = None if args.skip_long else record(args.cache / f"long-{args.long_minutes:g}min",
                                              args.long_minutes * 60, [3])
    if args.prepare_only:
        return
    cameras = load_frames(pair)
    episode_s = sum(len(steps) for _, steps in cameras) / FPS / CAMERAS
    results: dict[str, object] = {
        "benchmark": "export",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "episodes": f"{len(cameras) // CAMERAS} x {episode_s / (len(cameras) // CAMERAS):.1f} s, {CAMERAS} cameras "
                    f"{WIDTH}x{HEIGHT} at {FPS} fps, exported at --fps {FPS}",
        "codecs": {},
    }
    for codec in args.codecs.split(","):
        floor_s, floor_cpu_s = floor(cameras, codec)
        entry: dict[str, object] = {"floor": {"wall_s": round(floor_s, 2), "cpu_s": round(floor_cpu_s, 2),
                                              "episode_s_per_s": round(episode_s / floor_s, 2),
                                              "cpu_episode_s_per_cpu_s": round(episode_s / floor_cpu_s, 3)}}
        for engine, workers in ENGINE_RUNS:
            run = run_export(pair, codec, workers, engine=engine)
            run["ratio_to_floor"] = round(float(run["wall_s"]) / floor_s, 2)  # type: ignore[arg-type]
            run["cpu_ratio_to_floor"] = round(float(run["cpu_s"]) / floor_cpu_s, 2)  # type: ignore[arg-type]
            entry[f"export_{engine}_{workers}"] = run
        if args.baseline is not None and codec in args.baseline_codecs.split(","):
            run = run_export(pair, codec, 1, args.baseline)
            run["ratio_to_floor"] = round(float(run["wall_s"]) / floor_s, 2)  # type: ignore[arg-type]
            run["cpu_ratio_to_floor"] = round(float(run["cpu_s"]) / floor_cpu_s, 2)  # type: ignore[arg-type]
            entry["baseline"] = run
        results["codecs"][codec] = entry  # type: ignore[index]
    if long is not None:
        results["long_episode"] = {"codec": args.long_codec, **run_export(long, args.long_codec, 1)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
