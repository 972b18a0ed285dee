"""The checks of one episode for the fleet report, run as one task: validation, quality (drops, gaps, warnings),
duration, the phase mix of an accepted annotation, and who recorded it on which machine where.

Problems name the episode by its path relative to the folder or prefix, so the result does not depend on where
a worker kept its copy. Like `excap validate`, an annotation left half-written in a local folder (a sidecar) is
applied first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from excap.cluster.sources import EpisodeSource, local_episode
from excap.core.errors import ExcapError
from excap.delivery.s3sync import SyncOptions
from excap.episode.annotations import read_annotation
from excap.episode.structure import one_line
from excap.episode.summary import summarize
from excap.episode.validation import validate_episode

IDENTITY = ("operator_id", "machine_id", "site", "machine_kind")


@dataclass
class EpisodeCheck:
    episode: str  # relative path
    valid: bool
    problems: list[str] = field(default_factory=list)
    warnings: int = 0  # quality warnings (excap.episode.quality)
    duration_s: float = 0.0
    drops: int = 0  # samples lost to full queues, all streams
    gaps: int = 0  # intervals far longer than a stream's typical period, all streams
    phases_s: dict[str, float] = field(default_factory=dict)  # seconds per label of an accepted annotation
    operator_id: str = ""
    machine_id: str = ""
    site: str = ""
    machine_kind: str = ""


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value if value is not None else "")


def check_episode(source: EpisodeSource, options: SyncOptions | None = None) -> EpisodeCheck:
    """The checks of one episode (downloaded first when it lives in an object store)."""
    with local_episode(source, options) as path:
        problems = [p.replace(str(path), source.relative) for p in validate_episode(path)]
        check = EpisodeCheck(source.relative, valid=not problems, problems=problems)
        try:
            summary = summarize(path)
        except ExcapError as exc:
            if not problems:
                check.problems.append(f"{source.relative}: {one_line(exc)}")
                check.valid = False
            return check
        check.warnings = len(summary.warnings)
        check.duration_s = summary.duration_s
        check.drops = sum(stream.dropped for stream in summary.streams)
        check.gaps = sum(stream.gaps for stream in summary.streams)
        for name in IDENTITY:
            setattr(check, name, _text(summary.metadata.get(name, "")))
        try:
            annotation = read_annotation(path, recover=False)
        except Exception as exc:  # damaged annotation storage: validation already names it
            annotation = None
            if check.valid:
                check.problems.append(f"{source.relative}: annotation cannot be read ({one_line(exc)})")
                check.valid = False
        if annotation is not None and annotation.status == "accepted":
            for span in annotation.spans:
                seconds = max(span.t_end_ns - span.t_start_ns, 0) / 1e9
                check.phases_s[span.label] = check.phases_s.get(span.label, 0.0) + seconds
    return check


__all__ = ["EpisodeCheck", "check_episode"]
