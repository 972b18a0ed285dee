"""Quality warnings: streams of devices that delivered nothing, or far less than their nominal rate, and faults.

- an empty device stream (control, joysticks, CAN, cameras);
- a camera far below its nominal frame rate (`nominal_fps`);
- a CAN channel or a periodic joystick (backend serial, j1939, sim, ros2; HID joysticks only report changes) far
  below its observed rate: silent (no sample for SILENT_GAP_S, or ten median periods) for over half the episode;
- every `fault` event (a device that failed, went silent or was lost, the disk full, ...), with when it was
  cleared if it was.

These are not schema errors (the file is well formed): `excap inspect` and `excap validate` show them apart
from problems, and `excap validate` still exits 0 for an episode that only has warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader, Event

DEVICE_KINDS = ("control", "joystick", "can", "camera")  # streams a device or the command link must fill
MIN_RATE_SHARE = 0.5  # a camera delivering less than this share of its nominal frame rate is warned about
MIN_EXPECTED_FRAMES = 4  # ... once the episode is long enough to expect this many frames
PERIODIC_JOYSTICKS = ("serial", "j1939", "sim", "ros2")  # joystick backends that report at a fixed rate
MIN_PERIODS = 8  # a stream needs this many samples for its observed rate to mean something
SILENT_GAP_S = 1.0  # a CAN channel or periodic joystick without samples this long (at least) is silent


def episode_duration_s(reader: EpisodeReader) -> float:
    """The recorded duration: the `duration_s` attribute, else end_t_ns - start_t_ns, else 0."""
    duration = float(reader.metadata.get("duration_s", 0.0) or 0.0)
    if duration <= 0:
        duration = (int(reader.metadata.get("end_t_ns", 0) or 0) - reader.start_t_ns) / 1e9
    return max(duration, 0.0)


def quality_warnings(reader: EpisodeReader) -> list[str]:
    """One line per stream that is empty or far below its nominal or observed rate, and one per fault event."""
    duration = episode_duration_s(reader)
    warnings = []
    for info in reader.streams:
        if info.kind not in DEVICE_KINDS:
            continue
        nominal = reader.camera(info.path).nominal_fps if info.kind == "camera" else 0.0
        rated = f" (nominal {nominal:g} fps)" if nominal > 0 else ""
        if info.samples == 0:
            warnings.append(f"/{info.path}: no samples in {duration:.1f} s{rated}")
            continue
        expected = nominal * duration
        if expected >= MIN_EXPECTED_FRAMES and info.samples < MIN_RATE_SHARE * expected:
            warnings.append(f"/{info.path}: {info.samples} frames in {duration:.1f} s, "
                            f"{info.samples / duration:.1f} fps, {100 * info.samples / expected:.0f} % of its "
                            f"nominal {nominal:g} fps")
        elif info.kind == "can" or (info.kind == "joystick" and _periodic_joystick(reader, info.path)):
            warning = _below_observed_rate(reader, info.path, info.samples, duration)
            if warning:
                warnings.append(warning)
    return warnings + fault_warnings(reader.events(), reader.start_t_ns)


def _periodic_joystick(reader: EpisodeReader, path: str) -> bool:
    backend = reader.stream(path).attrs.get("backend", "")
    return (backend.decode() if isinstance(backend, bytes) else str(backend)) in PERIODIC_JOYSTICKS


def _below_observed_rate(reader: EpisodeReader, path: str, samples: int, duration: float) -> str:
    """A line if the stream was silent (gaps longer than SILENT_GAP_S, or ten of its median periods) for more than
    half the episode, i.e. it delivered less than half of what its observed rate gives over the whole episode."""
    if samples < MIN_PERIODS or duration <= 0:
        return ""
    t_ns = reader.stream(path).t_ns.astype(np.int64)
    start, end = reader.start_t_ns, reader.start_t_ns + int(duration * 1e9)
    edges = np.concatenate(([start], t_ns[(t_ns >= start) & (t_ns <= end)], [end]))
    gaps = np.diff(edges)
    inner = gaps[1:-1][gaps[1:-1] > 0]
    gap_ns = max(SILENT_GAP_S * 1e9, 10 * float(np.median(inner)) if len(inner) else 0.0)
    silent_s = float(gaps[gaps > gap_ns].sum()) / 1e9
    if duration - silent_s >= MIN_RATE_SHARE * duration:
        return ""
    rate = samples / max(duration - silent_s, 1e-9)
    unit = "frames" if path.startswith("can/") else "samples"
    return (f"/{path}: {samples} {unit} in {duration:.1f} s, {100 * (duration - silent_s) / duration:.0f} % of what "
            f"its observed {rate:.0f}/s gives (silent for {silent_s:.1f} s)")


def _first(detail: dict[str, Any], *keys: str) -> str:
    return next((str(detail[k]) for k in keys if detail.get(k) not in (None, "")), "")


def fault_warnings(events: list[Event], start_t_ns: int) -> list[str]:
    """One line per `fault` event: when, which device, what happened, and when it was cleared if it was."""
    cleared: dict[str, list[Event]] = {}
    for event in events:
        if event.kind == "fault_cleared":
            cleared.setdefault(_first(event.detail, "device"), []).append(event)
    lines = []
    for event in events:
        if event.kind != "fault":
            continue
        detail = event.detail
        device = _first(detail, "device", "channel", "camera", "stream", "thread")
        what = _first(detail, "problem", "error", "reason", "kind") or "fault"
        at = "before the start" if detail.get("before_start") else f"at {(event.t_ns - start_t_ns) / 1e9:.1f} s"
        later = [c for c in cleared.get(device, []) if c.t_ns >= event.t_ns]
        back = f", cleared after {(later[0].t_ns - event.t_ns) / 1e9:.1f} s" if later else ""
        lines.append(f"fault {at}: {device + ': ' if device else ''}{what}{back}")
    return lines


def file_warnings(path: Path) -> list[str]:
    """`quality_warnings` of an episode file; none for a file readers refuse (its problems say why)."""
    try:
        with EpisodeReader(path) as reader:
            return quality_warnings(reader)
    except EpisodeError:
        return []
