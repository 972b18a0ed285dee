"""`excap inspect`: per-stream counts, rates, gaps and drops, duration and metadata of an episode."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from capture_node.errors import EpisodeError
from capture_node.reader import stream_paths

GAP_FACTOR = 3.0  # a gap: an interval longer than this many typical periods ...
GAP_FLOOR_MS = 20.0  # ... and longer than this (bursty streams such as CAN have tiny median periods)


def gap_threshold_ms(periods_ms: np.ndarray) -> float:
    if not periods_ms.size:
        return 0.0
    return max(GAP_FACTOR * float(np.median(periods_ms)), GAP_FACTOR * float(np.mean(periods_ms)), GAP_FLOOR_MS)


@dataclass
class StreamSummary:
    stream: str
    samples: int
    rate_hz: float
    median_period_ms: float
    max_gap_ms: float
    gaps: int
    dropped: int
    first_t_s: float  # from the episode start
    last_t_s: float
    mean_bytes: float | None = None


@dataclass
class EpisodeSummary:
    path: str
    size_bytes: int
    duration_s: float
    metadata: dict[str, Any]
    streams: list[StreamSummary]
    events: dict[str, int]
    drop_events: int


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def summarize(path: Path) -> EpisodeSummary:
    if not h5py.is_hdf5(path):
        raise EpisodeError(f"{path}: not an HDF5 file")
    with h5py.File(path, "r") as handle:
        if _plain(handle.attrs.get("schema")) != "excap.episode":
            raise EpisodeError(f"{path}: not an excap episode (no schema='excap.episode' root attribute)")
        metadata = {k: _plain(v) for k, v in sorted(handle.attrs.items())}
        start = int(metadata.get("start_t_ns", 0))
        streams = []
        for stream in stream_paths(handle):
            group = handle[stream]
            t_ns = group["t_ns"][()]
            count = int(t_ns.size)
            periods = np.diff(t_ns) / 1e6 if count > 1 else np.array([])
            median = float(np.median(periods)) if periods.size else 0.0
            span = (t_ns[-1] - t_ns[0]) / 1e9 if count > 1 else 0.0
            mean_bytes = None
            if "frames" in group and count:
                sample = group["frames"][:: max(1, count // 50)]
                mean_bytes = float(np.mean([len(f) for f in sample]))
            streams.append(StreamSummary(
                stream=stream, samples=count,
                rate_hz=(count - 1) / span if span > 0 else 0.0,
                median_period_ms=median,
                max_gap_ms=float(periods.max()) if periods.size else 0.0,
                gaps=int(np.count_nonzero(periods > gap_threshold_ms(periods))),
                dropped=int(group.attrs.get("dropped", 0)),
                first_t_s=(int(t_ns[0]) - start) / 1e9 if count else 0.0,
                last_t_s=(int(t_ns[-1]) - start) / 1e9 if count else 0.0,
                mean_bytes=mean_bytes,
            ))
        kinds = [_plain(k) for k in handle["events/kind"][()]] if "events/kind" in handle else []
        events: dict[str, int] = {}
        for kind in kinds:
            events[kind] = events.get(kind, 0) + 1
        drop_events = 0
        if "drop" in events:
            details = handle["events/detail"][()]
            drop_events = sum(json.loads(_plain(d)).get("count", 1)
                              for k, d in zip(kinds, details, strict=True) if k == "drop")
    return EpisodeSummary(str(path), path.stat().st_size, float(metadata.get("duration_s", 0.0)), metadata,
                          streams, events, drop_events)


def summary_json(summary: EpisodeSummary) -> str:
    return json.dumps(asdict(summary), indent=2, sort_keys=False)


def summary_text(summary: EpisodeSummary) -> str:
    m = summary.metadata
    lines = [
        f"episode   {summary.path}",
        f"id        {m.get('episode_id')}   started {m.get('started_at')}   duration {summary.duration_s:.1f} s"
        f"   size {summary.size_bytes / 1e6:.1f} MB",
        f"machine   {m.get('machine_kind')} {m.get('machine_model')} ({m.get('machine_id')})   "
        f"pattern {m.get('control_pattern')}   profile {m.get('profile')}",
        f"operator  {m.get('operator_id')}   certification {m.get('certification') or '-'}   site {m.get('site')}"
        f"   task {m.get('task')}",
        f"outcome   {m.get('outcome')}{'   RECOVERED after a crash' if m.get('recovered') else ''}"
        f"   software {m.get('software')}",
    ]
    if m.get("notes"):
        lines.append(f"notes     {m['notes']}")
    lines.append("")
    width = max([len(s.stream) for s in summary.streams] + [6])
    lines.append(f"{'stream':<{width}}  {'samples':>8}  {'rate Hz':>8}  {'period ms':>9}  {'max gap ms':>10}"
                 f"  {'gaps':>5}  {'dropped':>7}")
    for s in summary.streams:
        lines.append(f"{s.stream:<{width}}  {s.samples:>8}  {s.rate_hz:>8.1f}  {s.median_period_ms:>9.2f}"
                     f"  {s.max_gap_ms:>10.1f}  {s.gaps:>5}  {s.dropped:>7}"
                     + (f"   ~{s.mean_bytes / 1024:.0f} KiB/frame" if s.mean_bytes else ""))
    lines.append("")
    lines.append("events    " + ", ".join(f"{k}={v}" for k, v in sorted(summary.events.items())))
    lines.append(f"drops     {summary.drop_events} samples dropped in all")
    return "\n".join(lines)
