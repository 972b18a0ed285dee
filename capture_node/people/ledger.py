"""`excap ledger DIR`: per operator and task, how many demonstrations and how many accepted hours.

An episode is **accepted** when all three hold (docs/annotation.md):
- its /annotations group has status `accepted` (`excap annotate --accept` or `--edit`),
- its outcome is `success`,
- it is valid against the episode schema (`excap validate`).

Columns: operator_id, task, episodes (all episodes in the period), accepted, accepted_hours (sum of the
`duration_s` of accepted episodes / 3600), last_date (UTC date of the operator's latest episode for the task).
Rows are sorted by operator_id, then task. `--since` / `--until` select on the episode start (UTC; a date alone
is the whole day). Episodes are found through the folder's catalogue (capture_node/catalogue/index.py); a
file that cannot be read is skipped with one warning line, and an episode whose annotation cannot be read counts
as not accepted. Operators appear by their pseudonymous id only.

Machine kinds: hours on different machine kinds are counted apart. Each row is one operator, task and machine
kind; the last CSV column is machine_kind (excavator, wheel_loader, ...; rows of the same operator and task
are sorted by it), and the table ends with the accepted hours per machine kind.
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from excap.catalogue.index import UNREADABLE_ERRORS, EpisodeFilter, Warn, select_episodes, stderr_warning
from excap.catalogue.store import add_catalog_option
from excap.core.errors import ExcapError

CSV_COLUMNS = ("operator_id", "task", "episodes", "accepted", "accepted_hours", "last_date", "machine_kind")


@dataclass(frozen=True)
class LedgerEpisode:
    path: Path
    operator_id: str
    task: str
    started_at: str
    duration_s: float
    outcome: str
    valid: bool
    annotation: str  # accepted | rejected | ''
    machine_kind: str = ""

    @property
    def accepted(self) -> bool:
        return self.annotation == "accepted" and self.outcome == "success" and self.valid


@dataclass
class LedgerRow:
    operator_id: str
    task: str
    episodes: int = 0
    accepted: int = 0
    accepted_s: float = 0.0
    last_date: str = ""
    machine_kind: str = ""

    @property
    def accepted_hours(self) -> float:
        return self.accepted_s / 3600.0


def ledger_episodes(directory: str | Path, since: str | None = None, until: str | None = None,
                    warn: Warn | None = stderr_warning, catalog: str | None = None) -> list[LedgerEpisode]:
    from excap.episode.annotations import annotation_status

    directory = Path(directory)
    if not directory.is_dir():
        raise ExcapError(f"{directory}: no such folder")
    episodes = []
    for record in select_episodes(directory, EpisodeFilter(since=since, until=until), warn=warn,
                                  catalog=catalog):
        path = directory / record.path
        try:
            status = annotation_status(path) if record.valid else ""
        except UNREADABLE_ERRORS:
            status = ""
        episodes.append(LedgerEpisode(path, record.operator_id, record.task, record.started_at, record.duration_s,
                                      record.outcome, record.valid, status, record.machine_kind))
    return episodes


def build_ledger(episodes: list[LedgerEpisode]) -> list[LedgerRow]:
    rows: dict[tuple[str, str, str], LedgerRow] = {}
    for episode in episodes:
        key = (episode.operator_id, episode.task, episode.machine_kind)
        row = rows.setdefault(key, LedgerRow(episode.operator_id, episode.task, machine_kind=episode.machine_kind))
        row.episodes += 1
        if episode.accepted:
            row.accepted += 1
            row.accepted_s += episode.duration_s
        row.last_date = max(row.last_date, episode.started_at[:10])
    return [rows[key] for key in sorted(rows)]


def ledger_csv(rows: list[LedgerRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in rows:
        writer.writerow([r.operator_id, r.task, r.episodes, r.accepted, f"{r.accepted_hours:.4f}", r.last_date,
                         r.machine_kind])
    return out.getvalue()


def ledger_table(rows: list[LedgerRow]) -> str:
    header = ("operator", "task", "episodes", "accepted", "accepted h", "last date", "machine")
    table = [header] + [(r.operator_id, r.task, str(r.episodes), str(r.accepted), f"{r.accepted_hours:.2f}",
                         r.last_date, r.machine_kind) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    right = (False, False, True, True, True, False, False)
    lines = ["  ".join(c.rjust(widths[i]) if right[i] else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()
             for row in table]
    total = sum(r.accepted_s for r in rows) / 3600.0
    lines.append(f"{sum(r.episodes for r in rows)} episodes, {sum(r.accepted for r in rows)} accepted, "
                 f"{total:.2f} accepted hours")
    lines.append(kind_hours_line(rows))
    return "\n".join(lines)


def kind_hours_line(rows: list[LedgerRow]) -> str:
    """Accepted hours per machine kind, e.g. `accepted hours by machine kind: excavator 1.75, wheel_loader 0.50`."""
    hours: dict[str, float] = {}
    for r in rows:
        hours[r.machine_kind or "unknown"] = hours.get(r.machine_kind or "unknown", 0.0) + r.accepted_hours
    return "accepted hours by machine kind: " + (", ".join(f"{k} {h:.2f}" for k, h in sorted(hours.items())) or "-")


def add_ledger_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("ledger", help="episodes and accepted hours per operator, task and machine kind")
    parser.add_argument("dir", type=Path, help="episode folder")
    parser.add_argument("--csv", type=Path, default=None, metavar="OUT", help="also write the ledger as CSV")
    parser.add_argument("--since", default=None, metavar="DATE", help="episodes started at or after (UTC)")
    parser.add_argument("--until", default=None, metavar="DATE", help="episodes started at or before (UTC)")
    add_catalog_option(parser)
    return parser


def cmd_ledger(args: argparse.Namespace) -> int:
    rows = build_ledger(ledger_episodes(args.dir, args.since, args.until, catalog=args.catalog))
    print(ledger_table(rows))
    if args.csv is not None:
        args.csv.write_text(ledger_csv(rows), encoding="utf-8")
        print(f"wrote {args.csv}")
    return 0
