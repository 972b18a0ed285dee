"""Turns journals left behind by a crashed recorder into valid episodes marked as recovered."""

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capture_node.clock import now_ns
from capture_node.episode import RECORDING_DIR, EpisodePaths
from capture_node.errors import EpisodeError, JournalError
from capture_node.h5writer import EpisodeFileWriter
from capture_node.journal import journal_is_live, read_journal
from capture_node.recorder import publish_atomically
from capture_node.streams import Batch, StreamSpec, batch_length, concat_batches, events_spec, rows_to_batch

log = logging.getLogger(__name__)

_FLUSH_ROWS = 8192
_FLUSH_BYTES = 32 * 1024 * 1024


@dataclass
class RecoveryResult:
    journal: Path
    episode: Path | None
    rows: int
    note: str


def orphaned_journals(out_dir: Path) -> list[Path]:
    """Journals in `out_dir` that no running recorder holds."""
    folder = out_dir / RECORDING_DIR
    if not folder.is_dir():
        return []
    return [p for p in sorted(folder.glob("*.journal")) if not journal_is_live(p)]


def recover_directory(out_dir: Path) -> list[RecoveryResult]:
    return [recover_journal(journal) for journal in orphaned_journals(out_dir)]


def _batch_bytes(batch: Batch) -> int:
    total = 0
    for values in batch.values():
        total += sum(len(v) for v in values) if isinstance(values, list) else values.nbytes
    return total


def recover_journal(journal: Path) -> RecoveryResult:
    """Rebuild the episode of one orphaned journal; the journal is removed once the episode is in place."""
    episode_id = journal.name.removesuffix(".journal")
    paths = EpisodePaths(journal.parent.parent, episode_id)
    contents, batches = read_journal(journal)
    if not contents.metadata:
        journal.unlink()
        paths.partial.unlink(missing_ok=True)
        return RecoveryResult(journal, None, 0, "journal held no data; removed")
    if paths.final.exists():
        raise EpisodeError(f"{paths.final}: already exists; not overwriting it with the recovery of {journal}")
    paths.partial.unlink(missing_ok=True)  # whatever HDF5 the crash left may be inconsistent
    attrs: dict[str, Any] = dict(contents.metadata)
    start_t_ns = int(attrs.get("start_t_ns", 0))
    last_t_ns = start_t_ns
    total_rows = 0
    pending: dict[str, list[Batch]] = {}
    pending_size: dict[str, tuple[int, int]] = {}
    specs: dict[str, StreamSpec] = {}
    with EpisodeFileWriter(paths.partial, attrs) as writer:

        def flush(path: str) -> None:
            if pending.get(path):
                writer.append(specs[path], concat_batches(specs[path], pending[path]))
                pending[path] = []
                pending_size[path] = (0, 0)

        for spec, batch in batches:
            specs[spec.path] = spec
            writer.ensure_stream(spec)
            rows = batch_length(batch)
            if rows:
                last_t_ns = max(last_t_ns, int(max(batch["t_ns"])))
            total_rows += rows
            pending.setdefault(spec.path, []).append(batch)
            size_rows, size_bytes = pending_size.get(spec.path, (0, 0))
            pending_size[spec.path] = (size_rows + rows, size_bytes + _batch_bytes(batch))
            if pending_size[spec.path][0] >= _FLUSH_ROWS or pending_size[spec.path][1] >= _FLUSH_BYTES:
                flush(spec.path)
        for path in list(pending):
            flush(path)
        note = (f"recovered {total_rows} rows from {contents.records} journal records"
                + (f"; journal ended early: {contents.torn_tail}" if contents.torn_tail else ""))
        events = next((s for s in specs.values() if s.path == "events"), events_spec())
        writer.append(events, rows_to_batch(events, [(
            last_t_ns, "recovered",
            json.dumps({"journal_records": contents.records, "torn_tail": contents.torn_tail,
                        "recovered_at_t_ns": now_ns()}, sort_keys=True),
        )]))
        writer.set_attrs(contents.metadata | {
            "recovered": True,
            "end_t_ns": last_t_ns,
            "duration_s": (last_t_ns - start_t_ns) / 1e9,
            "outcome": attrs.get("outcome") if attrs.get("outcome") != "unlabeled" else "aborted",
        })
    publish_atomically(paths.partial, paths.final)
    journal.unlink()
    log.info("%s: %s", paths.final, note)
    return RecoveryResult(journal, paths.final, total_rows, note)


__all__ = ["JournalError", "RecoveryResult", "orphaned_journals", "recover_directory", "recover_journal"]
