"""The fleet report: every episode under a folder or prefix checked by one task each (excap.cluster.fleet_checks)
on any engine, then one report grouped by operator, machine, site and machine kind.

Per group: episodes, hours, invalid episodes, quality warnings, drops and gaps, and the phase fractions of the
accepted annotations (share of annotated time per label). Operator ids only, never names. The report is the
same whichever engine ran the checks (the checks are aggregated in episode order).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from excap.cluster.engine import DEFAULT_RETRIES, Executor, TaskOutcome
from excap.cluster.fleet_checks import EpisodeCheck, check_episode
from excap.cluster.sources import EpisodeSource, list_episodes, with_endpoint
from excap.delivery.s3sync import SyncOptions

GROUPS = {"operator": "operator_id", "machine": "machine_id", "site": "site", "kind": "machine_kind"}
UNKNOWN = "(none)"


@dataclass
class GroupStats:
    episodes: int = 0
    hours: float = 0.0
    invalid: int = 0
    warnings: int = 0
    drops: int = 0
    gaps: int = 0
    phase_s: dict[str, float] = field(default_factory=dict)

    def add(self, check: EpisodeCheck) -> None:
        self.episodes += 1
        self.hours += check.duration_s / 3600
        self.invalid += 0 if check.valid else 1
        self.warnings += check.warnings
        self.drops += check.drops
        self.gaps += check.gaps
        for label, seconds in check.phases_s.items():
            self.phase_s[label] = self.phase_s.get(label, 0.0) + seconds

    def as_json(self) -> dict[str, Any]:
        annotated = sum(self.phase_s.values())
        fractions = {label: round(seconds / annotated, 4) for label, seconds in sorted(self.phase_s.items())}
        return {"episodes": self.episodes, "hours": round(self.hours, 4), "invalid": self.invalid,
                "warnings": self.warnings, "drops": self.drops, "gaps": self.gaps,
                "annotated_hours": round(annotated / 3600, 4), "phase_fractions": fractions if annotated else {}}


@dataclass
class FleetReport:
    source: str
    total: GroupStats = field(default_factory=GroupStats)
    groups: dict[str, dict[str, GroupStats]] = field(default_factory=lambda: {name: {} for name in GROUPS})
    problems: list[str] = field(default_factory=list)  # validation problems, one line each
    unchecked: list[str] = field(default_factory=list)  # episodes whose task failed: "episode: error"
    checks: list[EpisodeCheck] = field(default_factory=list)

    def add(self, check: EpisodeCheck) -> None:
        self.checks.append(check)
        self.total.add(check)
        self.problems += check.problems
        for group, attribute in GROUPS.items():
            key = getattr(check, attribute) or UNKNOWN
            self.groups[group].setdefault(key, GroupStats()).add(check)

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "total": self.total.as_json(),
                "groups": {group: {key: stats.as_json() for key, stats in sorted(members.items())}
                           for group, members in self.groups.items()},
                "problems": self.problems, "unchecked": self.unchecked,
                "episodes": [asdict(check) for check in self.checks]}

    def json_text(self) -> str:
        return json.dumps(self.as_json(), indent=2)

    def table(self) -> str:
        """A plain table per group, then the problems and the episodes that could not be checked."""
        header = (f"{'':<28} {'episodes':>8} {'hours':>8} {'invalid':>7} {'warn':>5} {'drops':>7} {'gaps':>6}"
                  "  phases")
        lines = [f"fleet report of {self.source}: {self.total.episodes} episodes, {self.total.hours:.2f} h, "
                 f"{self.total.invalid} invalid, {len(self.unchecked)} not checked"]
        for group, members in self.groups.items():
            lines += ["", f"per {group}", header]
            for key, stats in sorted(members.items()):
                data = stats.as_json()
                phases = " ".join(f"{label} {100 * share:.0f}%" for label, share in data["phase_fractions"].items())
                lines.append(f"{key[:28]:<28} {stats.episodes:>8} {stats.hours:>8.3f} {stats.invalid:>7} "
                             f"{stats.warnings:>5} {stats.drops:>7} {stats.gaps:>6}  {phases or '-'}")
        if self.problems:
            lines += ["", "problems", *self.problems]
        if self.unchecked:
            lines += ["", "not checked", *self.unchecked]
        return "\n".join(lines)


def report_of(source: str, outcomes: Iterable[TaskOutcome[EpisodeSource, EpisodeCheck]]) -> FleetReport:
    """The report of task outcomes given in episode order."""
    report = FleetReport(source)
    for outcome in outcomes:
        if outcome.ok and outcome.result is not None:
            report.add(outcome.result)
        else:
            report.unchecked.append(f"{outcome.task.relative}: {outcome.error}")
    return report


def fleet_report(source: str, executor: Executor, options: SyncOptions | None = None,
                 retries: int = DEFAULT_RETRIES) -> FleetReport:
    """Checks every episode of a folder or s3:// prefix on `executor` and aggregates the report."""
    access = with_endpoint(options)
    episodes = list_episodes(source, access)
    task = partial(check_episode, options=access)
    return report_of(source, executor.map_tasks(task, episodes, retries=retries, ordered=True))


__all__ = ["GROUPS", "FleetReport", "GroupStats", "fleet_report", "report_of"]
