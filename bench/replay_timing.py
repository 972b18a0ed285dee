"""Benchmark: how faithfully `excap replay` reproduces the recorded timing; prints JSON.

    python bench/replay_timing.py [--duration 20] [--episode EPISODE.h5] [--rate 1.0] [--no-ros]

Records a simulated episode (1 camera) unless one is given, then replays it (1) onto a python-can
virtual bus read by a receiver thread, with every other stream into an in-process probe, and (2)
if rclpy is available, into ROS 2 topics read by a subscriber node in this process (reliable QoS), started
only once every subscription is matched (`wait_subscriptions`, as `--wait-subscribers`).
For each received sample the error is |replayed inter-sample interval - recorded interval / rate|,
reported in milliseconds as p50 / p99 / max overall and per stream. The replayed time of a CAN frame is its
time on the bus (the `virtual` bus stamps each frame as it is sent, as a SocketCAN interface stamps it in the
kernel); of a ROS 2 message, its source timestamp (the middleware's stamp as the replay publishes it). Those
are what the replay controls; the time the receiving thread or executor callback got it is reported beside
(`at_receiver`, `at_callback`: the receiving side's own wake-up latency on a loaded machine adds to
it). The ROS figures add messages published /
received per topic (every one is expected) and /clock: the rate received over the middle of the replay (the
nominal rate is 100 Hz times --rate) and its interval error p99.
"""

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import can
import numpy as np

from excap.episode.reader import EpisodeReader
from excap.replay import Replay, ReplayOptions, Sample
from excap.replay.can_sink import CanSink, parse_can_target
from excap.station.sim import SimSessionOptions, run_sim_session


def interval_errors_ms(recorded_ns: Iterable[int], replayed_ns: Iterable[int], rate: float) -> np.ndarray:
    recorded = np.asarray(list(recorded_ns), dtype=np.int64)
    replayed = np.asarray(list(replayed_ns), dtype=np.int64)
    if len(recorded) < 2:
        return np.zeros(0)
    return np.abs(np.diff(replayed) - np.diff(recorded) / rate) / 1e6


def figures(errors: np.ndarray) -> dict[str, Any]:
    if errors.size == 0:
        return {"intervals": 0}
    return {"intervals": int(errors.size), "p50_ms": round(float(np.percentile(errors, 50)), 3),
            "p99_ms": round(float(np.percentile(errors, 99)), 3), "max_ms": round(float(errors.max()), 3)}


def report(pairs: dict[str, tuple[list[int], list[int]]], rate: float) -> dict[str, Any]:
    per_stream = {path: interval_errors_ms(rec, rep, rate) for path, (rec, rep) in sorted(pairs.items())}
    overall = np.concatenate([e for e in per_stream.values()] or [np.zeros(0)])
    return {"overall": figures(overall), "per_stream": {p: figures(e) for p, e in per_stream.items()}}


class Probe:
    """An in-process receiver: the monotonic time at which each non-CAN sample is emitted."""

    def __init__(self) -> None:
        self.pairs: dict[str, tuple[list[int], list[int]]] = {}

    def paths(self, reader: EpisodeReader) -> list[str]:
        return [s.path for s in reader.streams if s.kind != "can"]

    def open(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...

    def prepare(self, sample: Sample) -> Sample:
        return sample

    def emit(self, sample: Sample) -> None:
        recorded, replayed = self.pairs.setdefault(sample.path, ([], []))
        recorded.append(sample.t_ns)
        replayed.append(time.monotonic_ns())


def bench_can(episode: Path, rate: float) -> dict[str, Any]:
    channel = f"bench-replay-{os.getpid()}"
    receiver = can.Bus(interface="virtual", channel=channel)
    received: list[tuple[int, can.Message]] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            msg = receiver.recv(0.1)
            if msg is not None:
                received.append((time.monotonic_ns(), msg))  # msg.timestamp: its time on the bus (sent)

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    sink = CanSink(parse_can_target(f"virtual:{channel}"), transmit=True)
    probe = Probe()
    with EpisodeReader(episode) as reader:
        replay = Replay(reader, [sink, probe], ReplayOptions(rate=rate))
        stats = replay.run()
        raw = {path: reader.stream(path) for path in reader.paths("can")}
        recorded = {path: (stream.t_ns.tolist(), stream.column("id").tolist()) for path, stream in raw.items()}
    time.sleep(0.3)
    done.set()
    thread.join(2)
    receiver.shutdown()
    frames = received[:stats.total - sum(probe.pairs[p][0].__len__() for p in probe.pairs)]
    (path, (t_rec, ids)), = recorded.items()
    order_ok = [m.arbitration_id for _, m in frames] == ids
    pairs = dict(probe.pairs)
    pairs[path] = (t_rec[:len(frames)], [round(m.timestamp * 1e9) for _, m in frames])
    at_receiver = figures(interval_errors_ms(t_rec[:len(frames)], [t for t, _ in frames], rate))
    return {"frames_sent": sink.report.frames, "frames_received": len(frames), "ids_in_order": order_ok,
            "late_samples": stats.late, "resyncs": stats.resyncs, **report(pairs, rate),
            "can_at_receiver": at_receiver}


def bench_ros(episode: Path, rate: float) -> dict[str, Any]:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(101, 200)))
    from excap.ros.env import rclpy_available

    if not rclpy_available():
        return {"skipped": "rclpy not importable"}
    from excap.ros.replay_sink import RosSink

    sink = RosSink(prefix="/bench", reliable=True, clock=True)
    with tempfile.TemporaryDirectory(prefix="excap-replay-bench-ros-") as folder, EpisodeReader(episode) as reader:
        offset = int(reader.metadata["clock_offset_ns"])
        replay = Replay(reader, [sink], ReplayOptions(rate=rate))
        sink.controller = replay
        watched = [path for path in replay.paths if path != "events"]  # events carry no header stamp
        specs = [f"{path}={sink._topics[path]}={sink._types[path].__module__.split('.')[0]}/msg/"
                 f"{sink._types[path].__name__}" for path in watched]
        out = Path(folder) / "arrivals.json"
        receiver = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ros_receiver.py")), str(out),
                                     *specs], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
            sink.wait_subscriptions = len(watched) + 1  # and /clock
            sink.wait_timeout_s = 60.0
            replay.run()
            published = dict(sink.published)
        finally:
            assert receiver.stdin is not None
            receiver.stdin.close()
            receiver.wait(60)
        got = json.loads(out.read_text())
    clocks = [tuple(c) for c in got.pop("/clock")]
    arrivals = {path: [(a[0] - offset, a[1], a[2], a[3]) for a in rows] for path, rows in got.items()}
    pairs = {path: ([a[0] for a in rows], [a[1] for a in rows]) for path, rows in arrivals.items()}
    received = sum(len(a) for a in arrivals.values())
    lost = {path: published.get(path, 0) - len(a) for path, a in arrivals.items() if published.get(path, 0) != len(a)}
    at_receiver = {path: ([a[0] for a in rows], [a[2] for a in rows]) for path, rows in arrivals.items()}
    at_callback = {path: ([a[0] for a in rows], [a[3] for a in rows]) for path, rows in arrivals.items()}
    return {"published": sum(published[p] for p in arrivals if p in published), "received": received,
            "lost_per_topic": lost, "clock": clock_figures(clocks, rate), **report(pairs, rate),
            "at_receiver": report(at_receiver, rate)["overall"], "at_callback": report(at_callback, rate)["overall"]}


def clock_figures(clocks: list[tuple[int, int]], rate: float) -> dict[str, Any]:
    """/clock as received: the rate over the middle of the replay (first and last 0.5 s left out)."""
    if len(clocks) < 10:
        return {"messages": len(clocks)}
    first, last = clocks[0][1], clocks[-1][1]
    middle = [c for c in clocks if first + 5e8 <= c[1] <= last - 5e8] or clocks
    span_s = (middle[-1][1] - middle[0][1]) / 1e9
    errors = interval_errors_ms([c for c, _ in middle], [r for _, r in middle], rate)
    return {"messages": len(clocks), "nominal_hz": round(100 * rate, 3),
            "rate_hz": round((len(middle) - 1) / span_s, 3) if span_s > 0 else None, **figures(errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--episode", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--no-ros", action="store_true")
    args = parser.parse_args()
    episode = args.episode
    if episode is None:
        out = Path(tempfile.mkdtemp(prefix="excap-replay-bench-"))
        episode = run_sim_session(SimSessionOptions(out_dir=out, duration_s=args.duration, cameras=1, width=640,
                                                    height=480, fps=30.0))
    result: dict[str, Any] = {"episode": str(episode), "rate": args.rate, "cpus": os.cpu_count(),
                              "python": platform.python_version(), "load_avg_1min": round(os.getloadavg()[0], 2),
                              "can_and_probe": bench_can(episode, args.rate)}
    if not args.no_ros:
        result["ros"] = bench_ros(episode, args.rate)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
