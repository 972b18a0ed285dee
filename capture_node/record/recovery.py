"""Turns journals left behind by a crashed recorder into valid episodes marked as recovered.

Every journal ends in one of these states, and a journal is deleted only when nothing in it is lost:

- recovered: the episode is rebuilt, validated and published; every record was readable (a final
  record cut short by the crash aside), so the journal is removed.
- partly recovered: as above, but damaged records were skipped; the journal (and the recorder's
  partial HDF5 file) go to `DIR/.recording/quarantine/` with a one-line note.
- already published: the recorder was stopped after publishing the episode but before removing the
  journal; the episode is checked (valid, at least every journal row) and the journal removed, or
  quarantined if the check fails.
- quarantined: nothing valid can be rebuilt (an empty or foreign journal, a recording stopped before
  its first rows, lost metadata); the files go to quarantine with a note.
- kept: recovery cannot run now (not enough free disk space, an I/O error); nothing is changed, the
  next start or `excap recover` tries again.

One journal's failure never stops the recovery of the others.
"""

import contextlib
import fcntl
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import h5py

from excap.core.clock import now_ns
from excap.core.errors import EpisodeError, JournalError
from excap.core.memory import release_free_memory
from excap.episode.h5writer import MIN_CHUNK_BYTES, EpisodeFileWriter, chunk_rows, row_bytes
from excap.episode.journal_reader import JournalScan, read_batches, scan_journal
from excap.episode.metadata import OUTCOMES, RECORDING_DIR, EpisodePaths
from excap.episode.streams import (
    Batch,
    StreamSpec,
    batch_bytes,
    batch_length,
    concat_batches,
    events_spec,
    rows_to_batch,
)
from excap.episode.validation import validate_episode
from excap.record.disk_space import MB, describe, free_bytes
from excap.record.partial_file import partial_root_attrs
from excap.record.publish import publish_atomically

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
_FLUSH_ROWS = 8192  # a stream's rows written together (small rows: CAN, control)
#: Bytes held for writing across all streams; past it the stream holding the most is written (camera frames):
#: a rebuild's memory does not grow with the number of cameras.
PENDING_BYTES = 8 * MB
#: Free space a rebuild leaves beyond its own estimated size.
RECOVERY_MARGIN_BYTES = 8 * MB
_LABELS = tuple(o for o in OUTCOMES if o != "unlabeled")  # an outcome given before the crash is kept


class RecoveryStatus(Enum):
    RECOVERED = "recovered"
    PARTLY_RECOVERED = "partly recovered"
    ALREADY_PUBLISHED = "already published"
    QUARANTINED = "quarantined"
    KEPT = "kept"


@dataclass
class RecoveryResult:
    journal: Path
    episode: Path | None
    rows: int
    note: str
    status: RecoveryStatus = RecoveryStatus.RECOVERED
    quarantined: Path | None = None

    @property
    def resolved(self) -> bool:
        """The journal no longer needs recovering (only KEPT journals are tried again)."""
        return self.status is not RecoveryStatus.KEPT

    def line(self) -> str:
        """One line for the command line: what happened to this journal."""
        where = self.episode if self.episode is not None else self.journal
        return f"{where}: {self.status.value}: {self.note}"


def recovering_path(paths: EpisodePaths) -> Path:
    """Where an episode is rebuilt before it is validated and published."""
    return paths.recording_dir / f"{paths.episode_id}.h5.recovering"


def quarantine_dir(out_dir: Path) -> Path:
    return out_dir / RECORDING_DIR / QUARANTINE_DIR


def orphaned_journals(out_dir: Path) -> list[Path]:
    """Journals in `out_dir` that no running recorder holds."""
    folder = out_dir / RECORDING_DIR
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.journal")) if not _is_locked(p)]


def _is_locked(path: Path) -> bool:
    with _journal_lock(path) as locked:
        return not locked


@contextlib.contextmanager
def _journal_lock(path: Path) -> Iterator[bool]:
    """Hold the journal's lock (as its recorder did) for the duration; yields False if someone holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def recover_directory(out_dir: Path) -> list[RecoveryResult]:
    """Recover every orphaned journal of a folder; one journal's failure is reported and the rest go on."""
    results = []
    for journal in orphaned_journals(out_dir):
        try:
            results.append(recover_journal(journal))
        except Exception as exc:  # isolation boundary: one journal must never stop the others
            log.debug("recovery of %s failed", journal, exc_info=True)
            results.append(RecoveryResult(journal, None, 0, f"not recovered, kept in place: {exc}",
                                          RecoveryStatus.KEPT))
    if results:
        release_free_memory()  # a station recovers at its start and then records for days in the same process
    return results


def report_recovery(out_dir: Path) -> None:
    """Recover what a crash left in `out_dir` before recording into it; one stderr line per journal
    (`excap: error: ...` where a journal could not be fully recovered)."""
    for result in recover_directory(out_dir):
        prefix = "" if result.resolved else "excap: error: "
        print(f"{prefix}{result.line()}", file=sys.stderr)


def recover_journal(journal: Path, reserve_bytes: int = 0) -> RecoveryResult:
    """Resolve one orphaned journal (see the module's states); never deletes data it did not recover."""
    with _journal_lock(journal) as locked:
        if not locked:
            return RecoveryResult(journal, None, 0, "journal is held by a running recorder", RecoveryStatus.KEPT)
        return _recover_locked(journal, reserve_bytes)


def _recover_locked(journal: Path, reserve_bytes: int) -> RecoveryResult:
    episode_id = journal.name.removesuffix(".journal")
    paths = EpisodePaths(journal.parent.parent, episode_id)
    scan = scan_journal(journal)
    if scan.empty:
        why = ("empty journal (the recorder stopped before its first write)" if scan.size == 0
               else f"no readable record in {scan.size} bytes")
        return _quarantine(paths, journal, RecoveryStatus.QUARANTINED, None, 0, why)
    if paths.final.exists():
        return _resolve_published(paths, journal, scan)
    needed = _rebuild_bytes(scan) + RECOVERY_MARGIN_BYTES + reserve_bytes
    free = free_bytes(paths.recording_dir)
    if free < needed:
        return RecoveryResult(journal, None, 0, f"not enough free disk space to rebuild it ({describe(free)} free, "
                              f"needs about {describe(needed)}); journal kept, free some space and run "
                              f"`excap recover {paths.out_dir}`", RecoveryStatus.KEPT)
    rebuilt = recovering_path(paths)
    rebuilt.unlink(missing_ok=True)  # a rebuild interrupted earlier: derived from the journal, made again
    try:
        rows = _rebuild(paths, scan, rebuilt)
    except (OSError, RuntimeError, ValueError, EpisodeError) as exc:  # h5py reports write failures as these
        rebuilt.unlink(missing_ok=True)
        return RecoveryResult(journal, None, 0, f"rebuilding failed ({exc}); journal kept", RecoveryStatus.KEPT)
    problems = validate_episode(rebuilt)
    if problems:
        rebuilt.unlink()
        why = problems[0].removeprefix(f"{rebuilt}: ")
        return _quarantine(paths, journal, RecoveryStatus.QUARANTINED, None, rows,
                           f"no valid episode could be rebuilt from {rows} rows ({why})")
    publish_atomically(rebuilt, paths.final)
    detail = scan.summary()
    if scan.intact:
        journal.unlink()
        paths.partial.unlink(missing_ok=True)
        note = f"recovered {rows} rows from {scan.records} journal records" + (f"; {detail}" if detail else "")
        log.info("%s: %s", paths.final, note)
        return RecoveryResult(journal, paths.final, rows, note, RecoveryStatus.RECOVERED)
    return _quarantine(paths, journal, RecoveryStatus.PARTLY_RECOVERED, paths.final, rows,
                       f"recovered {rows} rows from {scan.records} journal records; {detail}")


def _rebuild_bytes(scan: JournalScan) -> int:
    """About how large the rebuilt episode will be: the journal's bytes, plus a partly filled chunk per dataset."""
    slack = sum(chunk_rows(column, scan.rows.get(index, 0)) * row_bytes(column)
                for index, spec in scan.streams.items() for column in spec.columns)
    return scan.size + slack + len(events_spec().columns) * MIN_CHUNK_BYTES


def _resolve_published(paths: EpisodePaths, journal: Path, scan: JournalScan) -> RecoveryResult:
    """The episode was published and the journal left behind: remove it if the episode has it all."""
    problems = validate_episode(paths.final)
    missing = [] if problems else _missing_rows(paths.final, scan)
    if not problems and not missing and scan.intact:
        journal.unlink()
        paths.partial.unlink(missing_ok=True)
        return RecoveryResult(journal, paths.final, 0, "the episode was complete; leftover journal removed",
                              RecoveryStatus.ALREADY_PUBLISHED)
    why = (problems[0].removeprefix(f"{paths.final}: ") if problems
           else f"lacks rows of {', '.join(missing)}" if missing else scan.summary())
    return _quarantine(paths, journal, RecoveryStatus.QUARANTINED, paths.final, 0,
                       f"an episode of this name exists, not overwritten; journal kept in quarantine ({why})")


def _missing_rows(episode: Path, scan: JournalScan) -> list[str]:
    """Streams of which the journal holds more rows than the episode."""
    missing = []
    with h5py.File(episode, "r") as handle:
        for index, spec in scan.streams.items():
            dataset = handle.get(f"{spec.path}/t_ns")
            have = dataset.shape[0] if isinstance(dataset, h5py.Dataset) else 0
            if have < scan.rows.get(index, 0):
                missing.append(spec.path)
    return missing


def _quarantine(paths: EpisodePaths, journal: Path, status: RecoveryStatus, episode: Path | None, rows: int,
                why: str) -> RecoveryResult:
    """Move the journal (and the recorder's partial file) aside with a one-line note of why."""
    folder = quarantine_dir(paths.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = paths.episode_id
    suffix = 1
    while (folder / f"{stem}.journal").exists():
        suffix += 1
        stem = f"{paths.episode_id}.{suffix}"
    target = folder / f"{stem}.journal"
    os.replace(journal, target)
    if paths.partial.exists():
        os.replace(paths.partial, folder / f"{stem}.h5.partial")
    (folder / f"{stem}.note").write_text(f"{why}\n", encoding="utf-8")
    note = f"{why}; journal moved to {target}"
    log.info("%s: %s", episode or journal, note)
    return RecoveryResult(journal, episode, rows, note, status, quarantined=target)


def _storable(attrs: dict[str, Any]) -> dict[str, Any]:
    """The attributes an HDF5 file can hold as they are: text, booleans, 64-bit integers and floats."""
    kept: dict[str, Any] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not key or "\0" in key:
            continue
        text = isinstance(value, str) and "\0" not in value
        number = isinstance(value, bool | float) or (isinstance(value, int) and -(2**63) <= value < 2**63)
        if text or number:
            kept[key] = value
    return kept


def _metadata(paths: EpisodePaths, scan: JournalScan) -> tuple[dict[str, Any], str]:
    """The episode's attributes and where they came from."""
    if scan.metadata_records:
        return _storable(scan.metadata), "journal"
    from_partial = partial_root_attrs(paths.partial) if paths.partial.exists() else {}
    if from_partial:
        return _storable(from_partial | scan.metadata), "partial HDF5 file (journal metadata damaged)"
    return _storable({"episode_id": paths.episode_id, **scan.metadata}), \
        "lost (journal metadata damaged, no partial file)"


def _rebuild(paths: EpisodePaths, scan: JournalScan, target: Path) -> int:
    """Write the episode of a scanned journal to `target`; returns the rows recovered."""
    attrs, metadata_source = _metadata(paths, scan)
    start = attrs.get("start_t_ns")
    start_t_ns = start if isinstance(start, int) and not isinstance(start, bool) else 0
    last_t_ns = start_t_ns
    total_rows = 0
    pending: dict[str, list[Batch]] = {}
    pending_rows: dict[str, int] = {}
    pending_bytes: dict[str, int] = {}
    specs: dict[str, StreamSpec] = {spec.path: spec for spec in scan.streams.values()}
    with EpisodeFileWriter(target, attrs) as writer:
        for index, spec in scan.streams.items():
            writer.ensure_stream(spec, expected_rows=scan.rows.get(index, 0))

        def flush(path: str) -> None:
            if pending.get(path):
                writer.append(specs[path], concat_batches(specs[path], pending[path]))
            pending[path], pending_rows[path], pending_bytes[path] = [], 0, 0

        for spec, batch in read_batches(scan):
            rows = batch_length(batch)
            if rows:
                last_t_ns = max(last_t_ns, int(max(batch["t_ns"])))
            total_rows += rows
            pending.setdefault(spec.path, []).append(batch)
            pending_rows[spec.path] = pending_rows.get(spec.path, 0) + rows
            pending_bytes[spec.path] = pending_bytes.get(spec.path, 0) + batch_bytes(batch)
            if pending_rows[spec.path] >= _FLUSH_ROWS:
                flush(spec.path)
            if sum(pending_bytes.values()) >= PENDING_BYTES:
                flush(max(pending_bytes, key=pending_bytes.__getitem__))
        for path in list(pending):
            flush(path)
        events = specs.get("events", events_spec())
        detail = {"journal_records": scan.records, "rows": total_rows, "skipped_ranges": len(scan.damaged),
                  "skipped_bytes": scan.skipped_bytes, "unusable_records": scan.unusable_records,
                  "torn_tail": scan.torn_tail.reason if scan.torn_tail else "",
                  "metadata_from": metadata_source, "recovered_at_t_ns": now_ns()}
        writer.append(events, rows_to_batch(events, [(last_t_ns, "recovered", json.dumps(detail, sort_keys=True))]))
        outcome = attrs.get("outcome")
        writer.set_attrs({
            "recovered": True,
            "end_t_ns": last_t_ns,
            "duration_s": (last_t_ns - start_t_ns) / 1e9,
            "outcome": outcome if outcome in _LABELS else "aborted",
        })
    return total_rows


__all__ = ["JournalError", "RecoveryResult", "RecoveryStatus", "orphaned_journals", "quarantine_dir",
           "recover_directory", "recover_journal"]
