"""`excap inspect`: per-stream counts, rates, gaps and drops, duration and metadata of an episode."""

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from excap.episode.labels import latest_label
from excap.episode.quality import episode_duration_s, quality_warnings
from excap.episode.reader import CameraStream, EpisodeReader, Event

GAP_FACTOR = 3.0  # a gap: an interval longer than this many typical periods ...
GAP_FLOOR_MS = 20.0  # ... and longer than this (bursty streams such as CAN have tiny median periods)
FRAME_SIZE_SAMPLES = 50  # frames whose size is measured per camera


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
    warnings: list[str] = field(default_factory=list)  # quality warnings (excap.episode.quality), not schema errors
    label: dict[str, Any] | None = None  # the latest `label` event (excap.episode.labels), if any
    drops_by_stream: dict[str, int] = field(default_factory=dict)  # `drop_events` per stream


def _drop_count(event: Event) -> int:
    count = event.detail.get("count", 1)
    return count if isinstance(count, int) and not isinstance(count, bool) and count >= 0 else 1


def drops_by_stream(events: Iterable[Event]) -> dict[str, int]:
    """Samples dropped per stream, from the episode's `drop` events (the recorder's queues and the encoders)."""
    drops: Counter[str] = Counter()
    for event in events:
        if event.kind == "drop":
            drops[str(event.detail.get("stream", "unknown"))] += _drop_count(event)
    return dict(sorted(drops.items()))


def _stream_summary(reader: EpisodeReader, path: str, start: int) -> StreamSummary:
    stream = reader.stream(path)
    t_ns = stream.t_ns
    count = int(t_ns.size)
    # float differences: never overflow, whatever the timestamps (int64 differences can wrap around)
    periods = np.subtract(t_ns[1:], t_ns[:-1], dtype=np.float64) / 1e6 if count > 1 else np.array([])
    span = (float(t_ns[-1]) - float(t_ns[0])) / 1e9 if count > 1 else 0.0
    mean_bytes = None
    if isinstance(stream, CameraStream) and count:
        sizes = stream.frame_bytes(range(0, count, max(1, count // FRAME_SIZE_SAMPLES)))
        mean_bytes = float(np.mean(sizes))
    return StreamSummary(
        stream=path, samples=count,
        rate_hz=(count - 1) / span if span > 0 else 0.0,
        median_period_ms=float(np.median(periods)) if periods.size else 0.0,
        max_gap_ms=float(periods.max()) if periods.size else 0.0,
        gaps=int(np.count_nonzero(periods > gap_threshold_ms(periods))),
        dropped=stream.dropped,
        first_t_s=(float(t_ns[0]) - start) / 1e9 if count else 0.0,
        last_t_s=(float(t_ns[-1]) - start) / 1e9 if count else 0.0,
        mean_bytes=mean_bytes,
    )


def summarize(path: Path) -> EpisodeSummary:
    """The summary `excap inspect` shows; EpisodeError (one line) for a file readers cannot read."""
    path = Path(path)
    with EpisodeReader(path) as reader:
        start = reader.start_t_ns
        streams = [_stream_summary(reader, info.path, start) for info in reader.streams]
        events = reader.events()
        kinds = Counter(event.kind for event in events)
        drops = drops_by_stream(events)
        label = latest_label(events)
        return EpisodeSummary(str(path), path.stat().st_size, episode_duration_s(reader), dict(reader.metadata),
                              streams, dict(kinds), sum(drops.values()), quality_warnings(reader),
                              label.as_json() if label is not None else None, drops)


def summary_json(summary: EpisodeSummary) -> str:
    return json.dumps(asdict(summary), indent=2, sort_keys=False)


def _outcome_text(recorded: Any, label: dict[str, Any] | None) -> str:
    if label is None:
        return str(recorded)
    return f"{label['outcome']} (labelled by {label['by'] or '?'} at {label['at']}; recorded {recorded})"


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
        f"outcome   {_outcome_text(m.get('outcome'), summary.label)}"
        f"{'   RECOVERED after a crash' if m.get('recovered') else ''}"
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
    where = ", ".join(f"{stream} {count}" for stream, count in summary.drops_by_stream.items())
    lines.append(f"drops     {summary.drop_events} samples dropped in all" + (f" ({where})" if where else ""))
    lines += [f"WARNING   {warning}" for warning in summary.warnings]
    return "\n".join(lines)
