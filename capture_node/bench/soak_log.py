"""A soak's JSON lines (`excap.bench.soak`) read back: the per-episode report, and where a stopped soak resumes.

A log holds these kinds of line: a sample every interval (`t_s`, RSS, drops, disk ...); for each finished episode,
one as it finishes (`finished`: its file) and one once it is checked (`episode`, `at_s`, its drops per stream and
validation problems); and, at the end, the summary. A soak continued after a restart (`--resume`) adds a
`resumed_at_s` line where the new process took over; the lines after it belong to the next segment (time counts on
from the last sample; RSS is the new process's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.errors import ConfigError


def read_log(path: Path) -> list[dict[str, Any]]:
    """A soak's JSON lines (a line cut off by a stop while it was written is left out)."""
    lines = []
    for text in path.read_text().splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


@dataclass
class SoakProgress:
    """What a stopped soak had done when its process ended: where its resumed run counts on from."""

    elapsed_s: float
    """Time of the last sample: the resumed run's time counts on from here."""
    episodes: list[str] = field(default_factory=list)
    """The finished episodes' files, in order."""
    drops: int = 0
    invalid: int = 0
    kept_for_inspection: list[str] = field(default_factory=list)
    written_mb: float = 0.0
    """MB written in all by the last sample (finished episodes kept or deleted, and the running one)."""
    segments: int = 1
    """Processes that have run the soak so far."""
    unchecked: list[str] = field(default_factory=list)
    """Episodes finished but not yet checked and named when the soak ended."""


def progress(lines: list[dict[str, Any]], hours: float) -> SoakProgress:
    """Where the soak of these lines resumes; ConfigError if it has nothing to resume (no sample, or its hours
    are reached)."""
    samples = [line for line in lines if "t_s" in line]
    if not samples:
        raise ConfigError("the soak log holds no sample: nothing to resume (start the soak without --resume)")
    elapsed = float(samples[-1]["t_s"])
    if elapsed >= hours * 3600:
        raise ConfigError(f"the soak in this folder has run its {hours:g} hours ({elapsed / 3600:.2f} h logged): "
                          "nothing to resume")
    episodes = [line for line in lines if "episode" in line and "at_s" in line]
    unclean = [line for line in episodes if line["drops"] or line["problems"]]
    named = {str(line["file"]) for line in episodes}
    unchecked = [str(line["finished"]) for line in lines if "finished" in line and line["finished"] not in named]
    return SoakProgress(elapsed, [str(line["file"]) for line in episodes],
                        sum(sum(line["drops"].values()) for line in episodes),
                        sum(1 for line in episodes if line["problems"]), [str(line["file"]) for line in unclean],
                        float(samples[-1]["written_mb"]), 1 + sum(1 for line in lines if "resumed_at_s" in line),
                        unchecked)


def report(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """A soak's JSON lines per episode: the samples taken while episode n recorded (n - 1 finished before). The RSS
    growth per episode is taken within each segment (one process) and the largest given."""
    checked = {line["episode"]: line for line in lines if "episode" in line and "at_s" in line}
    segment, samples, summary = 0, [], None
    for line in lines:
        if "resumed_at_s" in line:
            segment, summary = segment + 1, None  # a summary before it was a stop the soak resumed from
        elif "t_s" in line:
            samples.append((segment, line))
        elif line.get("summary") == "soak":
            summary = line
    if not samples:
        return {"samples": 0, "summary": summary}
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for segment, sample in samples:
        groups.setdefault((int(sample["episodes"]), segment), []).append(sample)
    rows = []
    for (finished, segment), group in sorted(groups.items()):
        cpu = [s["cpu_percent"] for s in group if s["cpu_percent"] is not None]
        rows.append({"episode": finished + 1, "segment": segment + 1, "from_min": round(group[0]["t_s"] / 60, 1),
                     "to_min": round(group[-1]["t_s"] / 60, 1),
                     "rss_mb_min": min(s["rss_mb"] for s in group), "rss_mb_max": max(s["rss_mb"] for s in group),
                     "drops": group[-1]["drops"], "disk_mb_max": max(s["disk_mb"] for s in group),
                     "cpu_percent_mean": round(sum(cpu) / len(cpu), 1) if cpu else None,
                     "load_avg_max": max(s["load_avg_1min"] for s in group),
                     "dropped": checked.get(finished + 1, {}).get("drops")})
    growths = [growth for segment in sorted({row["segment"] for row in rows})
               if (growth := _growth([row for row in rows if row["segment"] == segment])) is not None]
    last = samples[-1][1]
    return {"hours": round(last["t_s"] / 3600, 3), "samples": len(samples), "finished": summary is not None,
            "segments": samples[-1][0] + 1, "episodes_finished": last["episodes"], "drops": last["drops"],
            "rss_mb_start": samples[0][1]["rss_mb"], "rss_mb_peak": max(s["rss_mb"] for _, s in samples),
            "rss_mb_growth_per_episode": round(max(growths), 1) if growths else None,
            "disk_mb_max": max(s["disk_mb"] for _, s in samples), "written_mb": last["written_mb"],
            "per_episode": rows, "summary": summary}


def _growth(rows: list[dict[str, Any]]) -> float | None:
    """Peak RSS growth per episode over one segment's rows (not the line after the last stop)."""
    recorded = [row for row in rows if row["to_min"] > row["from_min"]]
    if len(recorded) < 2:
        return None
    return (recorded[-1]["rss_mb_max"] - recorded[0]["rss_mb_max"]) / (len(recorded) - 1)
