"""The recorder: bounded per-stream queues, one writer thread, journal + HDF5, atomic finish.

Drivers call `StreamHandle.put(row)` from their own threads; it never blocks. A journal thread
drains every queue every `journal_interval_s` (on a fixed schedule) and appends the rows to the
journal, handed to the OS at once; an HDF5 thread, every `h5_interval_s`, syncs the journal to disk
and appends the rows to the HDF5 file.
Stopping writes the last rows and the final attributes, syncs the file, renames it into place and
deletes the journal's name; the journal's disk space (slow to free: ~0.25 s per GB) and the heap's
free memory are given back afterwards on a background thread (`cleanup`), so a stop takes well under
a second whatever the episode's length.

Disk space is watched at every journal write: when the free space of the episode folder falls to
`disk_reserve_bytes`, the recorder stops recording rows (events still go in, with a `fault` event
`disk_full`), sets `fault`, and the episode is finished normally on `stop()`: a valid episode of
what fit. A write that fails anyway (an I/O error, a file size limit, a disk filled by another program between
two checks) stops the writers; `stop()` then keeps the journal for `excap recover` and says so in one
line (EpisodeError).
"""

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.core.clock import now_ns, utc_iso, utc_offset_ns
from excap.core.errors import DiskFullError, EpisodeError
from excap.core.memory import release_free_memory
from excap.core.periodic import Late, Periodic, Poller
from excap.core.step_timer import StepTimer
from excap.episode.h5writer import EpisodeFileWriter
from excap.episode.journal import JournalWriter
from excap.episode.metadata import OUTCOMES, EpisodeMetadata, EpisodePaths
from excap.episode.streams import Batch, StreamSpec, batch_bytes, concat_batches, events_spec, rows_to_batch
from excap.record.disk_space import describe, free_bytes, reserve_bytes
from excap.record.publish import publish_atomically
from excap.record.queues import StreamHandle, StreamStatus

__all__ = ["PHASES", "Recorder", "RecorderConfig", "StreamHandle", "StreamStatus"]

log = logging.getLogger(__name__)

#: Seconds of a stream's rows its first HDF5 chunk is sized for.
CHUNK_SECONDS = 4.0
#: Phases a recording passes through, reported to `RecorderConfig.on_phase` (an observation point
#: for monitoring and fault tests): after each step, before the next.
PHASES = ("journal_created", "started", "stopping", "writers_done", "h5_closed", "published", "journal_removed")


@dataclass
class RecorderConfig:
    out_dir: Path
    journal_interval_s: float = 0.25
    h5_interval_s: float = 1.0
    disk_reserve_bytes: int = field(default_factory=reserve_bytes)  # see excap.record.disk_space
    on_phase: Callable[[str], None] | None = None


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
        self._journal_worker: Periodic | None = None
        self._h5_worker: Poller | None = None
        self._pending_lock = threading.Lock()
        self._pending_bytes = 0  # in the journal, not yet in the HDF5 file
        self._journal: JournalWriter | None = None
        self._h5: EpisodeFileWriter | None = None
        self._finished: Path | None = None
        #: Why the recording stopped on its own ("" while all is well): disk full or a failed write.
        self.fault: str = ""
        self._halted = False  # rows are no longer recorded (disk reserve reached); files are consistent
        self._broken = False  # a write failed: only the journal can be trusted
        self.on_fault: list[Callable[[str], None]] = []
        self._metadata_updates: dict[str, Any] = {}
        self._metadata_lock = threading.Lock()
        self.start_t_ns = 0
        self.clock_offset_ns = 0
        #: Seconds of each step of stopping, from the stop request to the finished episode (the station adds the
        #: steps it takes before the recorder's own: stopping the devices, flushing the encoders).
        self.stop_steps = StepTimer()
        #: After a finished stop: the thread that frees the deleted journal's disk space and the episode's memory.
        self.cleanup: threading.Thread | None = None
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
        """The writers are running (not stopped, and no write failed)."""
        return self._h5_worker is not None and self._h5_worker.running

    def _phase(self, name: str) -> None:
        if self.config.on_phase is not None:
            self.config.on_phase(name)

    def start(self) -> None:
        if self._h5_worker is not None:
            raise EpisodeError("recorder already started")
        self.paths.recording_dir.mkdir(parents=True, exist_ok=True)
        if self.paths.final.exists():
            raise EpisodeError(f"{self.paths.final}: episode already exists")
        free = free_bytes(self.paths.recording_dir)
        if free <= self.config.disk_reserve_bytes:
            raise DiskFullError(f"{self.config.out_dir}: only {describe(free)} free, and a recording leaves "
                                f"{describe(self.config.disk_reserve_bytes)} free (the disk reserve); "
                                "free some space first")
        self.clock_offset_ns = utc_offset_ns()
        self.start_t_ns = now_ns()
        attrs = self.metadata.to_attrs() | {
            "started_at": utc_iso(self.start_t_ns, self.clock_offset_ns),
            "clock_offset_ns": self.clock_offset_ns,
            "start_t_ns": self.start_t_ns,
            "recovered": False,
        }
        try:
            self._journal = JournalWriter(self.paths.journal)
            self._phase("journal_created")
            self._journal.write_metadata(attrs)
            self._journal.flush()
            self._h5 = EpisodeFileWriter(self.paths.partial, attrs)
            self._h5.flush()  # the partial file is readable from the start (its metadata, for recovery)
        except OSError as exc:
            self._abandon_start()
            raise EpisodeError(f"{self.paths.recording_dir}: cannot start recording ({exc.strerror or exc})") from exc
        except BaseException:
            self._abandon_start()
            raise
        self.event("start", episode_id=self.metadata.episode_id)
        # The journal's cadence bounds what a crash can lose; a late drain runs at once and the schedule
        # restarts from it (one drain takes all that queued up: a burst would only write empty batches).
        self._journal_worker = Periodic("excap-journal", self.config.journal_interval_s, self._journal_tick,
                                        late=Late.REANCHOR, first_after_one_period=True)
        self._h5_worker = Poller("excap-hdf5", self.config.h5_interval_s, self._h5_tick)
        self._journal_worker.start()
        self._h5_worker.start()
        self._phase("started")

    def _abandon_start(self) -> None:
        """Undo a start that failed before any row was taken (the files hold nothing captured)."""
        _close_quietly(self._h5, self._journal)
        self.paths.partial.unlink(missing_ok=True)
        if self._journal is not None:
            self.paths.journal.unlink(missing_ok=True)
        self._h5 = self._journal = None
        self.start_t_ns = 0

    def stop(self, outcome: str | None = None, reason: str = "stop") -> Path:
        """Finish the episode and return its final path (`fault` says if it stopped early)."""
        if self._finished is not None:
            return self._finished
        if self._h5_worker is None or self._journal_worker is None:
            raise EpisodeError("recorder was never started")
        if outcome is not None:
            self.set_outcome(outcome)
        end_t_ns = now_ns()
        self.event("stop", reason=reason)
        self._phase("stopping")
        steps = self.stop_steps
        with steps.step("journal_writer"):
            self._journal_worker.stop()
            self._write(self._drain_to_journal)  # the rows queued since the last drain
        with steps.step("hdf5_writer"):
            self._h5_worker.stop()
        self._write(lambda: self._write_pending_to_h5(steps, "last_rows/"))
        self._phase("writers_done")
        assert self._journal is not None and self._h5 is not None
        if not self._broken:
            try:
                self._finish(end_t_ns)
            except (OSError, RuntimeError, ValueError) as exc:  # h5py reports write failures as these
                self._fail(exc)
        if self._broken:
            self._keep_journal()
        self.cleanup = threading.Thread(target=self._clean_up, name="excap-episode-cleanup", daemon=True)
        self.cleanup.start()
        return self._finished  # type: ignore[return-value]

    def _finish(self, end_t_ns: int) -> None:
        assert self._journal is not None and self._h5 is not None
        final_attrs: dict[str, Any] = {
            **self.metadata.to_attrs(),  # with every update made while recording
            "duration_s": (end_t_ns - self.start_t_ns) / 1e9,
            "end_t_ns": end_t_ns,
        }
        steps = self.stop_steps
        with steps.step("final_attributes"):
            for path, handle in self._handles.items():
                self._h5.ensure_stream(handle.spec)
                self._h5.set_attrs({"dropped": handle.queue.dropped}, path)
            self._h5.set_attrs(final_attrs)
        with steps.step("hdf5_close"):
            self._h5.close()
        self._phase("h5_closed")
        with steps.step("fsync_rename"):
            publish_atomically(self.paths.partial, self.paths.final)
        self._finished = self.paths.final
        self._phase("published")
        with steps.step("journal_removal"):
            self._journal.remove()  # every row is in the published episode now; its disk space goes in `cleanup`
        self._phase("journal_removed")

    def _clean_up(self) -> None:
        """After the episode is finished, off the stop's path: free the deleted journal's disk space (slow for a
        long episode) and give the heap's free memory back (the episode's buffers and caches are freed: do not keep
        them in the heap)."""
        assert self._journal is not None
        self._journal.release()
        release_free_memory()

    def _keep_journal(self) -> None:
        """After a failed write: keep the journal (the trusted copy) for `excap recover`, and say so.

        The episode is not rebuilt here: the write that failed (a full disk, a file size limit, an I/O
        error) would most likely fail again, and HDF5 does not always survive a failed write.
        """
        assert self._journal is not None
        _close_quietly(self._h5, self._journal)  # what the journal handed to the OS before is kept
        self.paths.partial.unlink(missing_ok=True)  # holds only rows the journal has, and may be inconsistent
        raise self.failure()

    @property
    def journal_kept(self) -> bool:
        """A write failed: no episode was published, the journal holds what was captured (see `failure`)."""
        return self._broken

    def failure(self) -> EpisodeError:
        """The one-line error for a recording whose write failed: why, and where the captured data is."""
        return EpisodeError(f"recording stopped ({self.fault}); the captured data is kept in {self.paths.journal}: "
                            f"run `excap recover {self.config.out_dir}` once that is fixed")

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

    def _journal_tick(self, _index: int) -> None:
        self._write(self._drain_to_journal)

    def _h5_tick(self) -> None:
        self._write(self._write_pending_to_h5)

    def _write(self, step: Callable[[], None]) -> None:
        """One writer step, unless a write failed before; a failure stops both writers."""
        if self._broken:
            return
        try:
            step()
        except Exception as exc:  # any writer failure must leave the journal for recovery
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        """A write failed: stop both writers; only the journal is trusted from here on."""
        self._broken = True
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, OSError) and exc.errno is not None:
            message = f"write failed: {exc.strerror or exc}"
        self._set_fault(message)
        for worker in (self._journal_worker, self._h5_worker):
            if worker is not None:
                worker.request_stop()

    def _set_fault(self, message: str) -> None:
        first = not self.fault
        self.fault = self.fault or message
        if first:
            log.info("recording stopped: %s", self.fault)  # the caller reports `fault` in its own words
            for hook in self.on_fault:
                try:
                    hook(self.fault)
                except Exception:
                    log.exception("fault hook failed")

    def _room_for(self, new_bytes: int) -> bool:
        """Whether `new_bytes` more rows (written twice: journal, then HDF5) still leave the reserve free.

        Counts the rows already in the journal and not yet in the HDF5 file, so a burst of large rows
        (camera frames) never reaches the disk's end between two checks. Once there is no room, the
        recording of rows stops for good (events still go in) and `fault` says why.
        """
        if self._halted:
            return False
        free = free_bytes(self.paths.recording_dir)
        reserve = self.config.disk_reserve_bytes
        with self._pending_lock:
            needed = self._pending_bytes + 2 * new_bytes
        if free - needed > reserve:
            return True
        self._halted = True
        self.event("fault", reason="disk_full", free_bytes=free, reserve_bytes=reserve, pending_bytes=needed)
        self._set_fault(f"disk nearly full: {describe(free)} free in {self.config.out_dir}, "
                        f"the reserve is {describe(reserve)}; recording stopped")
        return False

    def _drain_to_journal(self) -> None:
        assert self._journal is not None
        t_ns = now_ns()
        with self._metadata_lock:
            updates, self._metadata_updates = self._metadata_updates, {}
        if updates:
            self._journal.update_metadata(updates)
        with self._handles_lock:
            handles = [h for h in self._handles.values() if h is not self.events]
        batches: list[tuple[StreamHandle, Batch]] = []
        for handle in handles:
            self._journal.add_stream(handle.spec)  # declared at once, so a crash keeps even empty streams
            handle.update_rate(t_ns)
            rows = handle.queue.drain()
            if rows:
                batches.append((handle, rows_to_batch(handle.spec, rows)))
        if batches and not self._room_for(sum(batch_bytes(batch) for _, batch in batches)):
            for handle, batch in batches:
                handle.queue.count_unrecorded(len(batch["t_ns"]))
            batches = []
        for handle in handles:
            dropped = handle.queue.take_new_drops()
            if dropped:
                self.event("drop", stream=handle.spec.path, count=dropped)
        self._journal.checkpoint_if_due()
        self.events.update_rate(t_ns)
        events = self.events.queue.drain()  # after the drop and fault events above
        if events:
            batches.append((self.events, rows_to_batch(self.events.spec, events)))
        for handle, batch in batches:
            self._journal.write_batch(handle.spec, batch)
        self._journal.flush(durable=False)
        with self._pending_lock:
            for handle, batch in batches:
                self._pending.setdefault(handle.spec.path, _Pending(handle.spec)).batches.append(batch)
                self._pending_bytes += batch_bytes(batch)

    def _write_pending_to_h5(self, steps: StepTimer | None = None, prefix: str = "") -> None:
        """Sync the journal, append what it holds to the HDF5 file and sync that; `steps` times the three."""
        assert self._h5 is not None and self._journal is not None
        steps = steps or StepTimer()
        with steps.step(f"{prefix}journal_fsync"):
            self._journal.sync()
        with self._pending_lock:
            work = [(p.spec, p.batches) for p in self._pending.values() if p.batches]
            for pending in self._pending.values():
                pending.batches = []
        with steps.step(f"{prefix}hdf5_append"):
            for spec, batches in work:
                if self._broken:
                    return
                handle = self._handles.get(spec.path)
                expected = handle.rate_hz * CHUNK_SECONDS if handle is not None else 0.0
                batch = concat_batches(spec, batches)
                self._h5.append(spec, batch, expected_rows=expected)
                with self._pending_lock:
                    self._pending_bytes -= batch_bytes(batch)
        with steps.step(f"{prefix}hdf5_fsync"):
            self._h5.flush(durable=True)


def _close_quietly(*files: EpisodeFileWriter | JournalWriter | None) -> None:
    """Close files whose writes already failed (their error was reported when it happened)."""
    for file in files:
        if file is not None:
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                file.close()
