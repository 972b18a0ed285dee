"""What every recorder in the capture benchmark is measured by, in its own process: CPU seconds over the recording
window, peak and sampled RSS, frames kept and lost per stream, time from stop to a usable file."""

import os
import resource
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak RSS in MB (10^6 bytes, as `rss_mb`; `VmHWM`: unlike `ru_maxrss`, not inherited from the
    parent across exec)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def disk_bytes(folder: Path) -> int:
    """Bytes in the files below `folder`."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def sequence_gaps(seqs: np.ndarray) -> int:
    """Frames missing between the first and the last kept frame (sequence numbers of one stream, any order)."""
    if len(seqs) < 2:
        return 0
    ordered = np.sort(seqs.astype(np.int64))
    return int(ordered[-1] - ordered[0] + 1 - len(np.unique(ordered)))


class RssSampler:
    """RSS every `interval_s` on a thread, as (seconds since start, MB)."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.samples.append((round(time.monotonic() - self._t0, 1), round(rss_mb(), 1)))

    def stop(self) -> list[tuple[float, float]]:
        self._stop.set()
        return self.samples


@dataclass
class RecorderResult:
    recorder: str
    streams: int
    seconds: float
    """The recording window (start to stop requested)."""
    frames_kept: int = 0
    frames_lost: int = 0
    """Sequence gaps in what was kept: frames the producer wrote during the window that are not in the file."""
    lost_per_stream: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    """CPU seconds of the recorder's process over the recording window."""
    cpu_ms_per_frame: float = 0.0
    peak_rss_mb: float = 0.0
    rss_mb_over_time: list[tuple[float, float]] = field(default_factory=list)
    stop_to_usable_s: float | None = None
    file_mb: float = 0.0
    usable: bool = False
    broke: str = ""
    """Why the run ended early or what it cannot do (RAM cap reached, ...); empty when it held."""
    extra: dict[str, Any] = field(default_factory=dict)

    def finish(self, cpu_window_s: float) -> None:
        self.cpu_s = round(cpu_window_s, 2)
        self.cpu_ms_per_frame = round(1000 * cpu_window_s / self.frames_kept, 3) if self.frames_kept else 0.0
        self.frames_lost = sum(self.lost_per_stream)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
