"""`excap bench soak`: hours of episodes one after another, sampling memory, drops, disk use and CPU (JSON lines).

Records like a shift does: one episode after another (`episode_minutes` each) until `hours` have passed. By
default each episode is a whole session of the simulated station (devices opened, episode started, stopped,
finished, devices closed, all in one process); with `devices_open` (`--station`) the devices stay open for the
whole run and the episodes are started and stopped on them, as `excap station` does through an operator's shift;
with a station config (`--config`) the station's own devices, open all along: a burn-in of a station before it
goes to a machine. Every `interval_s` one JSON line goes to the log (and stdout): elapsed time, RSS, CPU (share of
one core since the last line), drops so far (finished episodes plus the running one), MB on disk (finished
episodes kept and the running episode's journal), MB written in all, episodes finished, load average. Drops are
counted as the station page counts them (the recorder's queues and the JPEG encoders). After each episode one line
names it with its drops per stream and its validation problems. Only the last `keep` clean finished episodes stay
on disk (older ones are deleted, as a station's uplink retention would), so an 8-hour run fits on a laptop's disk;
an episode with drops or problems is never deleted, so it can be inspected; the soak deletes only episodes it
recorded. At the end a summary line: RSS at the start, after 10 minutes and at the end, peak RSS, drops, episodes,
invalid episodes, mean CPU, the episodes kept for inspection.

Each finished episode is summarised and validated in a child process, as a station's uplink or an engineer reads
it, so that reading a 2 GB file does not count in the recording process's memory. A soak whose process ended
(a machine restart, a kill) continues with `resume`: the episode the end cut off is recovered from its journal, as a
station does when it starts again, and counted; time, episodes and drops count on from the log, and `hours` is the
total; the summary's RSS and mean CPU are then the last process's (the report gives every segment's).
`excap.bench.soak_log` reads the lines back (the per-episode report, where a soak resumes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from excap.bench.measure import cpu_s, disk_bytes, peak_rss_mb, rss_mb
from excap.bench.soak_log import SoakProgress, progress, read_log
from excap.core.clock import utc_now_iso
from excap.core.errors import ConfigError

if TYPE_CHECKING:
    from excap.record.recorder import Recorder
    from excap.station.config import StationConfig
    from excap.station.runtime import StationRuntime
    from excap.station.sim import SimSessionOptions

READY_WAIT_S = 10.0

CHECK = """
import json, sys
from excap.episode.summary import summarize
from excap.episode.validation import validate_episode
path = sys.argv[1]
print(json.dumps({"drops": summarize(path).drops_by_stream, "problems": len(validate_episode(path))}))
"""


@dataclass
class SoakSettings:
    hours: float = 8.0
    episode_minutes: float = 10.0
    interval_s: float = 30.0
    cameras: int = 2
    width: int = 640
    height: int = 480
    fps: float = 30.0
    keep: int = 3
    """Finished episodes kept on disk."""
    devices_open: bool = False
    """The devices stay open for the whole run (always so with `config`)."""
    config: StationConfig | None = None
    """A station config: its devices instead of the simulated station's."""
    resume: bool = False
    """Continue the soak logged in the folder (after its process ended) instead of starting one."""

    @property
    def mode(self) -> str:
        if self.config is not None:
            return f"station config {self.config.path}"
        return "open" if self.devices_open else "per episode"


@dataclass
class EpisodeCheck:
    """What a finished episode holds that a soak counts."""

    drops: dict[str, int]
    """Samples dropped per stream (the episode's `drop` events)."""
    problems: int
    """Validation problems."""

    @property
    def clean(self) -> bool:
        return not self.drops and not self.problems


def check_episode(path: Path) -> EpisodeCheck:
    """Drops and validation problems of a finished episode, read in a child process."""
    done = subprocess.run([sys.executable, "-c", CHECK, str(path)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return EpisodeCheck({str(k): int(v) for k, v in result["drops"].items()}, int(result["problems"]))


class StationEpisodes:
    """A station's devices, open for the whole soak; episodes started and stopped on them."""

    def __init__(self, config: StationConfig) -> None:
        from excap.station.session import open_checked_station

        self.station = open_checked_station(config, threading.Event(), wait_devices_s=READY_WAIT_S)

    def episode(self, length_s: float, started: Callable[[StationRuntime, Recorder], None],
                stop: threading.Event) -> Path:
        from excap.station.certification import start_certified

        recorder, _check = start_certified(self.station.runtime, None, self.station.check)
        started(self.station.runtime, recorder)
        stop.wait(length_s)
        return self.station.runtime.stop_episode()

    def close(self) -> None:
        self.station.runtime.close(reason="end")


class Soak:
    def __init__(self, settings: SoakSettings, out: Path, log: TextIO, echo: TextIO | None = None,
                 stop: threading.Event | None = None, check: Callable[[Path], EpisodeCheck] = check_episode) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.out = out
        self.log = log
        self.echo = echo
        self.check = check
        self.running: tuple[StationRuntime, int] | None = None  # the running episode's station, its drops before it
        self.station: StationEpisodes | None = None
        self.finished: list[Path] = []
        self.kept_for_inspection: list[Path] = []  # episodes with drops or validation problems, never deleted
        self.drops_finished = 0
        self.invalid = 0
        self.written_finished = 0
        self.lines: list[dict[str, Any]] = []
        self.t0 = time.monotonic()
        self._cpu = (self.t0, cpu_s())
        self.segments = 1

    def resume_from(self, done: SoakProgress) -> None:
        """Count on from a stopped soak's log: its time, episodes, drops, disk; count an episode it finished but had
        not checked, and recover the episode it cut off."""
        from excap.record.recovery import recover_directory

        self.t0 -= done.elapsed_s
        self.segments = done.segments + 1
        self.finished = [self.out / name for name in done.episodes]
        self.kept_for_inspection = [self.out / name for name in done.kept_for_inspection]
        self.drops_finished, self.invalid = done.drops, done.invalid
        self.written_finished = max(0, round(done.written_mb * 1e6) - disk_bytes(self.out))
        unchecked = [self.out / name for name in done.unchecked if (self.out / name).is_file()]
        recovered = [result for result in recover_directory(self.out) if result.episode is not None]
        self.write({"resumed_at_s": done.elapsed_s, "segment": self.segments, "utc": utc_now_iso(),
                    "unchecked": [path.name for path in unchecked],
                    "recovered": [result.line() for result in recovered]})
        for path in unchecked:  # finished before the end came, while they were being checked
            self.count_episode(path)
        for result in recovered:
            assert result.episode is not None
            self.count_episode(result.episode, recovered=True)

    def running_drops(self) -> int:
        """Samples the running episode has dropped so far (queues and encoders, as the station page counts)."""
        running = self.running
        if running is None:
            return 0
        runtime, before = running
        return max(0, runtime.dropped() - before)

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
        self.write(line)
        return line

    def write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line)
        if self.echo is not None:
            print(text, file=self.echo, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self) -> dict[str, Any]:
        end = self.t0 + self.settings.hours * 3600
        done = threading.Event()

        def sampler() -> None:
            while not done.wait(self.settings.interval_s):
                self.sample()

        self.sample()
        thread = threading.Thread(target=sampler, name="soak-sampler", daemon=True)
        thread.start()
        try:
            if self.settings.config is not None or self.settings.devices_open:
                self.station = StationEpisodes(self.station_config())
            while time.monotonic() < end and not self.stop.is_set():
                length = min(self.settings.episode_minutes * 60, max(end - time.monotonic(), 1.0))
                self.episode(length)
        finally:
            if self.station is not None:
                self.station.close()
            done.set()
            thread.join()
        summary = self.summary(self.sample())
        self.write(summary)
        return summary

    def sim_options(self, length_s: float | None) -> SimSessionOptions:
        from excap.station.sim import SimSessionOptions

        s = self.settings
        return SimSessionOptions(out_dir=self.out, duration_s=length_s, cameras=s.cameras, width=s.width,
                                 height=s.height, fps=s.fps, stale_timeout_s=0.5)

    def station_config(self) -> StationConfig:
        if self.settings.config is None:
            from excap.station.sim import simulated_station

            return simulated_station(self.sim_options(None))
        return dataclasses.replace(self.settings.config, out_dir=self.out)

    def episode(self, length_s: float) -> None:
        def started(runtime: StationRuntime, _recorder: Recorder) -> None:
            self.running = (runtime, runtime.dropped())

        if self.station is not None:
            path = self.station.episode(length_s, started, self.stop)
        else:
            from excap.station.sim import run_sim_session

            opened: list[StationRuntime] = []
            path = run_sim_session(self.sim_options(length_s), stop=self.stop, on_open=opened.append,
                                   on_started=lambda recorder: started(opened[0], recorder))
        self.running = None
        self.count_episode(path)

    def count_episode(self, path: Path, recovered: bool = False) -> None:
        """Check a finished episode, name it in the log, and roll the older clean ones away. The log names it as
        finished before the check, which takes seconds: a soak ended then counts it when it resumes."""
        self.write({"finished": path.name})
        checked = self.check(path)
        self.drops_finished += sum(checked.drops.values())
        self.invalid += checked.problems > 0
        self.finished.append(path)
        line = {"episode": len(self.finished), "file": path.name, "at_s": round(time.monotonic() - self.t0, 1),
                "drops": checked.drops, "problems": checked.problems}
        self.write(line | {"recovered": True} if recovered else line)
        if not checked.clean:
            self.kept_for_inspection.append(path)
        rolling = [episode for episode in self.finished if episode not in self.kept_for_inspection]
        for old in rolling[:-self.settings.keep]:
            if old.exists():
                self.written_finished += old.stat().st_size
                old.unlink()

    def summary(self, last: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        after_10_min = next((line for line in self.lines if line["t_s"] >= 600), last)
        return {"summary": "soak", "hours": round(last["t_s"] / 3600, 3), "segments": self.segments,
                "episodes": len(self.finished),
                "invalid_episodes": self.invalid, "drops": last["drops"], "rss_mb_start": self.lines[0]["rss_mb"],
                "rss_mb_at_10_min": after_10_min["rss_mb"], "rss_mb_end": last["rss_mb"],
                "rss_mb_peak": round(peak_rss_mb(), 1),
                "cpu_percent_mean": round(100 * cpu_s() / max(last["t_s"] - self.lines[0]["t_s"], 1e-9), 1),
                "disk_mb_max": max(line["disk_mb"] for line in self.lines), "written_mb": last["written_mb"],
                "cameras": s.cameras if s.config is None else None,
                "resolution": f"{s.width}x{s.height}" if s.config is None else None,
                "episode_minutes": s.episode_minutes, "devices": s.mode, "cpus": os.cpu_count(),
                "kept_for_inspection": [path.name for path in self.kept_for_inspection]}


def run_soak(settings: SoakSettings, out: Path, log_path: Path | None = None, echo: TextIO | None = sys.stdout,
             stop: threading.Event | None = None) -> dict[str, Any]:
    """Run a soak into `out` (episodes in OUT/episodes, JSON lines in `log_path`, default OUT/soak.jsonl, appended)
    until `hours` have passed or `stop` is set (the running episode is then finished early); returns the summary."""
    episodes = out / "episodes"
    log_path = log_path or out / "soak.jsonl"
    done = None
    if settings.resume:
        if not log_path.is_file():
            raise ConfigError(f"{log_path}: no soak log to resume (give the --out of the soak to continue)")
        done = progress(read_log(log_path), settings.hours)
    episodes.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        soak = Soak(settings, episodes, log, echo, stop)
        if done is not None:
            soak.resume_from(done)
        return soak.run()

