"""Soak: hours of rolling simulated episodes, sampling memory, drops, disk use and CPU; JSON lines + a summary.

    python bench/soak.py [--hours 8] [--episode-minutes 10] [--interval 30] [--cameras 2] [--keep 3]
                         [--station] [--out DIR] [--log soak.jsonl]

Records on the simulated station like a shift does: one episode after another (`--episode-minutes` each, every one
a full record session: devices opened, episode started, stopped, finished), until `--hours` have passed. With
`--station` the devices stay open for the whole run and each episode is started and stopped on them, as
`excap station` does between an operator's episodes. Every
`--interval` seconds it appends one JSON line to `--log` (and stdout): elapsed time, RSS, CPU (share of one core
since the last line), drops so far (finished episodes plus the running one), MB on disk (finished episodes kept
and the running episode's journal), MB written in all (deleted episodes plus what is on disk), episodes finished.
Only the last `--keep` finished episodes stay on disk (older ones are deleted, as a station's uplink retention
would), so an 8-hour run fits on a laptop's disk. At the end it prints a summary (the last line): RSS at the
start, after 10 minutes and at the end, peak RSS, drops, episodes, invalid episodes (`excap validate`), mean CPU.
`--hours 0.05` is a smoke run of three minutes. `--report LOG` reads a soak's JSON lines (finished or still
running) and prints one row per episode (RSS range, drops, disk, CPU) and the RSS growth per episode, as JSON.
Each finished episode is summarised and validated in a child process, as a station's uplink or an engineer reads
it, so that reading a 2 GB file does not count in the recording process's memory."""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.record.recorder import Recorder
from excap.station.certification import check_station_operator, session_operator, start_certified
from excap.station.readiness import wait_ready
from excap.station.runtime import StationRuntime
from excap.station.sim import SimSessionOptions, run_sim_session, simulated_station


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CHECK = """
import json, sys
from excap.episode.summary import summarize
from excap.episode.validation import validate_episode
path = sys.argv[1]
print(json.dumps({"drop_events": summarize(path).drop_events, "problems": len(validate_episode(path))}))
"""


def check_episode(path: Path) -> dict[str, int]:
    """Drops and validation problems of a finished episode, read in a child process (as a station's uplink or an
    engineer would), so that reading a 2 GB file does not count in the recording process's memory."""
    done = subprocess.run([sys.executable, "-c", CHECK, str(path)], capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class OpenStation:
    """The simulated station's devices, open for the whole soak; episodes started and stopped on them."""

    def __init__(self, options: SimSessionOptions) -> None:
        self.config = simulated_station(options)
        self.check = check_station_operator(self.config, session_operator(self.config, None))
        self.runtime = StationRuntime(self.config).open()
        missing = wait_ready(self.runtime, 10.0, threading.Event())
        if missing:
            self.runtime.close(reason="exception", outcome="aborted")
            raise SystemExit(f"soak: the simulated station's devices did not deliver: {', '.join(missing)}")

    def episode(self, length_s: float, started: Callable[[Recorder], None]) -> Path:
        recorder, _check = start_certified(self.runtime, None, self.check)
        started(recorder)
        threading.Event().wait(length_s)
        return self.runtime.stop_episode()

    def close(self) -> None:
        self.runtime.close(reason="end")


class Soak:
    def __init__(self, args: argparse.Namespace, out: Path, log: TextIO) -> None:
        self.args = args
        self.out = out
        self.log = log
        self.recorder: Recorder | None = None
        self.station: OpenStation | None = None
        self.finished: list[Path] = []
        self.drops_finished = 0
        self.invalid = 0
        self.written_finished = 0
        self.lines: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._cpu = (self.t0, cpu_s())

    def running_drops(self) -> int:
        recorder = self.recorder
        if recorder is None:
            return 0
        return sum(status.dropped for status in recorder.status())

    def sample(self) -> dict[str, Any]:
        now, cpu = time.monotonic(), cpu_s()
        interval = now - self._cpu[0]
        cpu_percent = round(100 * (cpu - self._cpu[1]) / interval, 1) if interval >= 1.0 else None
        self._cpu = (now, cpu)
        on_disk = disk_bytes(self.out)
        line = {"t_s": round(now - self.t0, 1), "rss_mb": round(rss_mb(), 1), "cpu_percent": cpu_percent,
                "drops": self.drops_finished + self.running_drops(), "disk_mb": round(on_disk / 1e6, 1),
                "written_mb": round((self.written_finished + on_disk) / 1e6, 1),
                "episodes": len(self.finished), "load_avg_1min": round(os.getloadavg()[0], 2)}
        self.lines.append(line)
        text = json.dumps(line)
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()
        return line

    def run(self) -> dict[str, Any]:
        end = self.t0 + self.args.hours * 3600
        done = threading.Event()

        def sampler() -> None:
            while not done.wait(self.args.interval):
                self.sample()

        self.sample()
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            if self.args.station:
                self.station = OpenStation(self.options(None))
            while time.monotonic() < end:
                length = min(self.args.episode_minutes * 60, max(end - time.monotonic(), 1.0))
                self.episode(length)
        finally:
            if self.station is not None:
                self.station.close()
            done.set()
            thread.join()
        return self.summary(self.sample())

    def options(self, length_s: float | None) -> SimSessionOptions:
        return SimSessionOptions(out_dir=self.out, duration_s=length_s, cameras=self.args.cameras,
                                 width=self.args.width, height=self.args.height, fps=self.args.fps,
                                 stale_timeout_s=0.5)

    def episode(self, length_s: float) -> None:
        def started(recorder: Recorder) -> None:
            self.recorder = recorder

        if self.station is not None:
            path = self.station.episode(length_s, started)
        else:
            path = run_sim_session(self.options(length_s), on_started=started)
        self.recorder = None
        checked = check_episode(path)
        self.drops_finished += checked["drop_events"]
        self.invalid += checked["problems"] > 0
        self.finished.append(path)
        for old in self.finished[:-self.args.keep]:
            if old.exists():
                self.written_finished += old.stat().st_size
                old.unlink()

    def summary(self, last: dict[str, Any]) -> dict[str, Any]:
        after_10_min = next((line for line in self.lines if line["t_s"] >= 600), last)
        return {"summary": "soak", "hours": round(last["t_s"] / 3600, 3), "episodes": len(self.finished),
                "invalid_episodes": self.invalid, "drops": last["drops"], "rss_mb_start": self.lines[0]["rss_mb"],
                "rss_mb_at_10_min": after_10_min["rss_mb"], "rss_mb_end": last["rss_mb"],
                "rss_mb_peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1),
                "cpu_percent_mean": round(100 * cpu_s() / max(last["t_s"], 1e-9), 1),
                "disk_mb_max": max(line["disk_mb"] for line in self.lines), "written_mb": last["written_mb"],
                "cameras": self.args.cameras, "resolution": f"{self.args.width}x{self.args.height}",
                "episode_minutes": self.args.episode_minutes, "devices": "open" if self.args.station else "per episode",
                "cpus": os.cpu_count()}


def report(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """A soak's JSON lines per episode: the samples taken while episode n recorded (n - 1 finished before)."""
    samples = [line for line in lines if "t_s" in line]
    summary = next((line for line in lines if line.get("summary") == "soak"), None)
    if not samples:
        return {"samples": 0, "summary": summary}
    groups: dict[int, list[dict[str, Any]]] = {}
    for sample in samples:
        groups.setdefault(int(sample["episodes"]), []).append(sample)
    rows = []
    for finished, group in sorted(groups.items()):
        cpu = [s["cpu_percent"] for s in group if s["cpu_percent"] is not None]
        rows.append({"episode": finished + 1, "from_min": round(group[0]["t_s"] / 60, 1),
                     "to_min": round(group[-1]["t_s"] / 60, 1),
                     "rss_mb_min": min(s["rss_mb"] for s in group), "rss_mb_max": max(s["rss_mb"] for s in group),
                     "drops": group[-1]["drops"], "disk_mb_max": max(s["disk_mb"] for s in group),
                     "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
                     "load_avg_max": max(s["load_avg_1min"] for s in group)})
    recorded = [row for row in rows if row["to_min"] > row["from_min"]]  # not the line after the last stop
    growth = ((recorded[-1]["rss_mb_max"] - recorded[0]["rss_mb_max"]) / (len(recorded) - 1)
              if len(recorded) > 1 else None)
    return {"hours": round(samples[-1]["t_s"] / 3600, 3), "samples": len(samples), "finished": summary is not None,
            "episodes_finished": samples[-1]["episodes"], "drops": samples[-1]["drops"],
            "rss_mb_start": samples[0]["rss_mb"], "rss_mb_peak": max(s["rss_mb"] for s in samples),
            "rss_mb_growth_per_episode": None if growth is None else round(growth, 1),
            "disk_mb_max": max(s["disk_mb"] for s in samples), "written_mb": samples[-1]["written_mb"],
            "per_episode": rows, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=8.0)
    parser.add_argument("--episode-minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--keep", type=int, default=3, help="finished episodes kept on disk")
    parser.add_argument("--station", action="store_true",
                        help="keep the devices open for the whole run (as excap station does)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None, help="JSON lines file (default: OUT/soak.jsonl)")
    parser.add_argument("--report", type=Path, default=None, metavar="LOG",
                        help="print the per-episode report of a soak's JSON lines and exit")
    args = parser.parse_args()
    if args.report is not None:
        lines = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
        print(json.dumps(report(lines), indent=2))
        return
    if args.hours <= 0 or args.episode_minutes <= 0 or args.interval <= 0 or args.keep < 1:
        parser.error("--hours, --episode-minutes and --interval must be positive, --keep at least 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="excap-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    log_path = args.log or out / "soak.jsonl"
    with open(log_path, "a") as log:
        soak = Soak(args, out / "episodes", log)
        soak.out.mkdir(exist_ok=True)
        summary = soak.run()
        log.write(json.dumps(summary) + "\n")
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
