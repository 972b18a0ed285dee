"""The recorder: bounded per-stream queues, one writer thread, journal + HDF5, atomic finish.

Drivers call `StreamHandle.put(row)` from their own threads; it never blocks. A journal thread
drains every queue at `journal_interval_s` and appends the rows to the journal, handed to the OS
at once; an HDF5 thread, every `h5_interval_s`, syncs the journal to disk and appends the rows to
the HDF5 file.
Stopping writes the last rows and the final attributes, then renames the finished file into
place, so a stop takes well under a second whatever the episode's length.
"""

import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture_node.clock import now_ns, utc_iso, utc_offset_ns
from capture_node.episode import OUTCOMES, EpisodeMetadata, EpisodePaths
from capture_node.errors import EpisodeError
from capture_node.h5writer import EpisodeFileWriter
from capture_node.journal import JournalWriter
from capture_node.queues import DropCountingQueue
from capture_node.streams import Batch, StreamSpec, concat_batches, events_spec, rows_to_batch

log = logging.getLogger(__name__)


@dataclass
class RecorderConfig:
    out_dir: Path
    journal_interval_s: float = 0.25
    h5_interval_s: float = 1.0


@dataclass
class StreamStatus:
    path: str
    accepted: int
    dropped: int
    last_t_ns: int | None
    rate_hz: float


class StreamHandle:
    """A driver's end of one stream."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.queue = DropCountingQueue(spec.queue_capacity)
        self.last_t_ns: int | None = None
        self._rate_mark = (0, now_ns())
        self.rate_hz = 0.0

    def put(self, row: tuple[Any, ...]) -> bool:
        """Queue one row (column order of the spec, `t_ns` first). False if it was dropped."""
        self.last_t_ns = row[0]
        return self.queue.put(row)

    def update_rate(self, t_ns: int) -> None:
        count, since = self._rate_mark
        elapsed = (t_ns - since) / 1e9
        if elapsed >= 0.5:
            self.rate_hz = (self.queue.accepted - count) / elapsed
            self._rate_mark = (self.queue.accepted, t_ns)


@dataclass
class _Pending:
    spec: StreamSpec
    batches: list[Batch] = field(default_factory=list)


class Recorder:
    """Records one episode. Use as a context manager: the episode is finalized on every exit."""

    def __init__(self, config: RecorderConfig, metadata: EpisodeMetadata) -> None:
        self.config = config
        self.metadata = metadata
        self.paths = EpisodePaths(config.out_dir, metadata.episode_id)
        self._handles: dict[str, StreamHandle] = {}
        self._handles_lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._journal_thread: threading.Thread | None = None
        self._pending_lock = threading.Lock()
        self._journal: JournalWriter | None = None
        self._h5: EpisodeFileWriter | None = None
        self._finished: Path | None = None
        self.fault: str = ""
        self._metadata_updates: dict[str, Any] = {}
        self._metadata_lock = threading.Lock()
        self.start_t_ns = 0
        self.clock_offset_ns = 0
        self.events = self.add_stream(events_spec())

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "Recorder":
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._finished is None:
            self.stop(outcome=None if exc_type is None else "aborted",
                      reason="exception" if exc_type is not None else "end")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self._thread is not None:
            raise EpisodeError("recorder already started")
        self.paths.recording_dir.mkdir(parents=True, exist_ok=True)
        if self.paths.final.exists():
            raise EpisodeError(f"{self.paths.final}: episode already exists")
        self.clock_offset_ns = utc_offset_ns()
        self.start_t_ns = now_ns()
        attrs = self.metadata.to_attrs() | {
            "started_at": utc_iso(self.start_t_ns, self.clock_offset_ns),
            "clock_offset_ns": self.clock_offset_ns,
            "start_t_ns": self.start_t_ns,
            "recovered": False,
        }
        self._journal = JournalWriter(self.paths.journal)
        self._journal.write_metadata(attrs)
        self._journal.flush()
        self._h5 = EpisodeFileWriter(self.paths.partial, attrs)
        self.event("start", episode_id=self.metadata.episode_id)
        self._journal_thread = threading.Thread(target=self._run_journal, name="excap-journal", daemon=True)
        self._thread = threading.Thread(target=self._run_h5, name="excap-hdf5", daemon=True)
        self._journal_thread.start()
        self._thread.start()

    def stop(self, outcome: str | None = None, reason: str = "stop") -> Path:
        """Finish the episode and return its final path."""
        if self._finished is not None:
            return self._finished
        if self._thread is None:
            raise EpisodeError("recorder was never started")
        if outcome is not None:
            self.set_outcome(outcome)
        end_t_ns = now_ns()
        self.event("stop", reason=reason)
        self._stop.set()
        self._thread.join()
        assert self._journal is not None and self._h5 is not None
        if self.fault:
            self._journal.close()
            raise EpisodeError(f"recording failed ({self.fault}); captured data kept in "
                               f"{self.paths.journal}: run `excap recover {self.config.out_dir}`")
        final_attrs: dict[str, Any] = {
            **self.metadata.to_attrs(),  # with every update made while recording
            "duration_s": (end_t_ns - self.start_t_ns) / 1e9,
            "end_t_ns": end_t_ns,
        }
        for path, handle in self._handles.items():
            self._h5.ensure_stream(handle.spec)
            self._h5.set_attrs({"dropped": handle.queue.dropped}, path)
        self._h5.set_attrs(final_attrs)
        self._h5.close()
        publish_atomically(self.paths.partial, self.paths.final)
        self._journal.close()
        self.paths.journal.unlink()
        self._finished = self.paths.final
        return self._finished

    # -- producers ------------------------------------------------------------------------

    def add_stream(self, spec: StreamSpec) -> StreamHandle:
        """Register a stream (thread-safe, idempotent by path) and return its handle."""
        with self._handles_lock:
            handle = self._handles.get(spec.path)
            if handle is None:
                handle = StreamHandle(spec)
                self._handles[spec.path] = handle
            elif handle.spec != spec:
                raise EpisodeError(f"stream {spec.path!r} registered twice with different layouts")
            return handle

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None:
        self.events.put((now_ns() if t_ns is None else t_ns, kind, json.dumps(detail, sort_keys=True)))

    def set_outcome(self, outcome: str) -> None:
        if outcome not in OUTCOMES:
            raise EpisodeError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
        self.update_metadata(outcome=outcome)

    def update_metadata(self, **attrs: Any) -> None:
        for key, value in attrs.items():
            setattr(self.metadata, key, value)
        self.event("metadata", **attrs)
        with self._metadata_lock:
            self._metadata_updates.update(attrs)

    def status(self) -> list[StreamStatus]:
        with self._handles_lock:
            handles = list(self._handles.values())
        return [StreamStatus(h.spec.path, h.queue.accepted, h.queue.dropped, h.last_t_ns, h.rate_hz)
                for h in handles]

    # -- writer threads -------------------------------------------------------------------
    # The journal thread only drains queues and appends to the journal (page cache writes), so its
    # cadence, and with it the crash-loss bound, never waits on HDF5 or on disk syncs. The HDF5
    # thread syncs the journal to disk, then appends what the journal thread handed over.

    def _run_journal(self) -> None:
        try:
            while True:
                stopping = self._stop.wait(self.config.journal_interval_s)
                self._drain_to_journal()
                if stopping:
                    return
        except Exception as exc:  # any writer failure must leave the journal for recovery
            self._fail(exc)

    def _run_h5(self) -> None:
        assert self._journal_thread is not None
        try:
            while self._journal_thread.is_alive():
                self._journal_thread.join(self.config.h5_interval_s)
                self._write_pending_to_h5()
            self._write_pending_to_h5()  # the journal thread's last drain may land after the write above
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self.fault = self.fault or f"{type(exc).__name__}: {exc}"
        log.error("recording writer stopped: %s", self.fault)
        self._stop.set()

    def _drain_to_journal(self) -> None:
        assert self._journal is not None
        t_ns = now_ns()
        with self._metadata_lock:
            updates, self._metadata_updates = self._metadata_updates, {}
        if updates:
            self._journal.update_metadata(updates)
        with self._handles_lock:
            handles = [h for h in self._handles.values() if h is not self.events]
        for handle in handles:
            dropped = handle.queue.take_new_drops()
            if dropped:
                self.event("drop", stream=handle.spec.path, count=dropped)
        drained: list[tuple[StreamSpec, Batch]] = []
        for handle in [*handles, self.events]:
            handle.update_rate(t_ns)
            rows = handle.queue.drain()
            if not rows:
                continue
            batch = rows_to_batch(handle.spec, rows)
            self._journal.write_batch(handle.spec, batch)
            drained.append((handle.spec, batch))
        self._journal.flush(durable=False)
        with self._pending_lock:
            for spec, batch in drained:
                self._pending.setdefault(spec.path, _Pending(spec)).batches.append(batch)

    def _write_pending_to_h5(self) -> None:
        assert self._h5 is not None and self._journal is not None
        self._journal.sync()
        with self._pending_lock:
            work = [(p.spec, p.batches) for p in self._pending.values() if p.batches]
            for pending in self._pending.values():
                pending.batches = []
        for spec, batches in work:
            self._h5.append(spec, concat_batches(spec, batches))
        self._h5.flush(durable=True)


def publish_atomically(temporary: Path, final: Path) -> None:
    """Make a finished file durable, then move it to its final name in one step."""
    fd = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if final.exists():
        raise EpisodeError(f"{final}: episode already exists")
    os.replace(temporary, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
