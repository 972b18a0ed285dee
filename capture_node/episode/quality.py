"""Quality warnings: streams of devices that delivered nothing, or far less than their nominal rate, and devices
that failed while recording (`fault` events: a device's worker thread died, so its stream stops early).

These are not schema errors (the file is well formed): `excap inspect` and `excap validate` show them apart
from problems, and `excap validate` still exits 0 for an episode that only has warnings.
"""

from __future__ import annotations

from pathlib import Path

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader

DEVICE_KINDS = ("control", "joystick", "can", "camera")  # streams a device or the command link must fill
MIN_RATE_SHARE = 0.5  # a camera delivering less than this share of its nominal frame rate is warned about
MIN_EXPECTED_FRAMES = 4  # ... once the episode is long enough to expect this many frames


def episode_duration_s(reader: EpisodeReader) -> float:
    """The recorded duration: the `duration_s` attribute, else end_t_ns - start_t_ns, else 0."""
    duration = float(reader.metadata.get("duration_s", 0.0) or 0.0)
    if duration <= 0:
        duration = (int(reader.metadata.get("end_t_ns", 0) or 0) - reader.start_t_ns) / 1e9
    return max(duration, 0.0)


def quality_warnings(reader: EpisodeReader) -> list[str]:
    """One line per stream that is empty or, for cameras, far below its nominal frame rate."""
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
    for event in reader.events():
        if event.kind == "fault" and "device" in event.detail:
            at = max(0.0, (event.t_ns - reader.start_t_ns) / 1e9)
            warnings.append(f"device {event.detail['device']} failed at {at:.1f} s: "
                            f"{event.detail.get('error', 'unknown error')}")
    return warnings


def file_warnings(path: Path) -> list[str]:
    """`quality_warnings` of an episode file; none for a file readers refuse (its problems say why)."""
    try:
        with EpisodeReader(path) as reader:
            return quality_warnings(reader)
    except EpisodeError:
        return []
