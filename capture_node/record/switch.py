"""Episodes on demand over drivers that keep running: streams exist across episodes, a recorder is
attached while an episode runs.

Drivers write to `TeeStream`s (duck-compatible with `StreamHandle`) and report events to the
`EpisodeSwitch` (duck-compatible with `Recorder` for `add_stream` / `event`), so `CanCapture` and
`JpegEncoder` work unchanged over it. Every stream keeps its own counters (rate, drops, staleness)
and tells its listeners about every row, whether or not an episode runs.

A row goes to the episode only if its `t_ns` lies in the episode's span: from the recorder's
`start_t_ns` to the moment `stop` was asked for. Streams are attached before the recorder starts, so
nothing after `start_t_ns` is missed. `put` never blocks and never waits on the switch: it reads one
reference (handle, recorder, end of span) and queues the row. Stopping first closes the span, then
runs the flush hooks (encoders finish frames captured before the cut, CAN captures finish the frame
in hand), then detaches the recorder and finalizes it, so rows captured before the cut are not lost
to the switch and rows of the next episode never reach this one.

Two locks, always taken in this order: `_episode_lock` serialises starting and stopping episodes and is held
while the flush hooks wait for drivers; `_lock` guards the stream registry and the recorder reference and is
only ever held briefly. A driver may register a stream (`stream`) while it is in the middle of a row a flush
hook waits for: that needs only `_lock`, which stopping does not hold while it waits.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from excap.core.clock import now_ns
from excap.core.errors import EpisodeError
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import StreamSpec
from excap.record.recorder import Recorder, RecorderConfig, StreamHandle

log = logging.getLogger(__name__)

RATE_WINDOW_S = 1.0
_OPEN_END = 2**63 - 1

RowListener = Callable[[tuple[Any, ...]], None]
EventListener = Callable[[str, int, dict[str, Any]], None]


class StreamSink(Protocol):
    """A driver's end of one stream: a `StreamHandle` or a `TeeStream`."""

    spec: StreamSpec

    def put(self, row: tuple[Any, ...]) -> bool: ...


class EpisodeSink(Protocol):
    """Where drivers register streams and report events: a `Recorder` or an `EpisodeSwitch`."""

    def add_stream(self, spec: StreamSpec) -> StreamSink: ...

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None: ...


class TeeStream:
    """One stream across episodes: counts, tells listeners, and records rows of the running episode."""

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.listeners: list[RowListener] = []
        self.count = 0
        self.rejected = 0
        self.extra_drops = 0  # e.g. frames an encoder could not keep up with
        self.last_t_ns: int | None = None
        self._window = (0, now_ns())
        self.rate_hz = 0.0
        self._target: tuple[StreamHandle, Recorder, int] | None = None  # (handle, its recorder, last t_ns)
        self._listener_errors = 0

    def put(self, row: tuple[Any, ...]) -> bool:
        self.count += 1
        self.last_t_ns = row[0]
        for listener in self.listeners:
            try:
                listener(row)
            except Exception:  # a consumer's failure must never reach the driver thread
                self._listener_errors += 1
                if self._listener_errors == 1:
                    log.exception("listener of %s failed (further failures only counted)", self.spec.path)
        target = self._target
        if target is None:
            return True
        handle, recorder, last = target
        first = recorder.start_t_ns
        if not first or not first <= row[0] <= last:
            return True  # outside the running episode's span (or before it started)
        return handle.put(row)

    def reject(self) -> None:
        """A message that could not be turned into a row (wrong layout, undecodable)."""
        self.rejected += 1

    @property
    def recording(self) -> bool:
        return self._target is not None

    @property
    def dropped(self) -> int:
        target = self._target
        return self.rejected + self.extra_drops + (target[0].queue.dropped if target is not None else 0)

    def update_rate(self, t_ns: int) -> float:
        count, since = self._window
        elapsed = (t_ns - since) / 1e9
        if elapsed >= RATE_WINDOW_S:
            self.rate_hz = (self.count - count) / elapsed
            self._window = (self.count, t_ns)
        return self.rate_hz

    def staleness_s(self, t_ns: int) -> float | None:
        return None if self.last_t_ns is None else (t_ns - self.last_t_ns) / 1e9


@dataclass
class EpisodeResult:
    path: Path | None
    episode_id: str
    outcome: str
    discarded: bool = False
    fault: str = ""  # why the episode stopped on its own (disk nearly full, a failed write)


@dataclass
class EpisodeSwitch:
    """Holds the running episode, if any. Thread-safe; drivers never block on it.

    Hooks: `on_start(recorder)` after the recorder started (e.g. events describing the current
    state), `flush()` while stopping, after the episode's span closed and before the recorder is
    detached (wait for rows captured before the cut), `on_stop(recorder)` before it is finalized.
    `on_event(kind, t_ns, detail)` sees every event, also between episodes.

    A recorder that stops on its own (disk nearly full, a failed write) is told to `on_event` as a
    `fault` event, and its episode is finished at once with reason `fault`; `last.fault` says why.
    """

    out_dir: Path
    on_start: list[Callable[[Recorder], None]] = field(default_factory=list)
    flush: list[Callable[[], None]] = field(default_factory=list)
    on_stop: list[Callable[[Recorder], None]] = field(default_factory=list)
    on_event: list[EventListener] = field(default_factory=list)
    on_stream: list[Callable[[TeeStream], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._episode_lock = threading.RLock()  # start / stop (held while flush hooks wait)
        self._lock = threading.RLock()  # streams and the recorder reference (held briefly)
        self._cut = _OPEN_END  # end of the running episode's span once stopping began
        self._streams: dict[str, TeeStream] = {}
        self.recorder: Recorder | None = None
        self.last: EpisodeResult | None = None

    # -- streams and events ---------------------------------------------------------------------

    def stream(self, spec: StreamSpec) -> TeeStream:
        """The stream at `spec.path` (created on first use, also in a running episode)."""
        with self._lock:
            tee = self._streams.get(spec.path)
            if tee is None:
                tee = TeeStream(spec)
                self._streams[spec.path] = tee
                recorder = self.recorder
                if recorder is not None:
                    tee._target = (recorder.add_stream(spec), recorder, self._cut)
                for hook in self.on_stream:
                    hook(tee)
            elif tee.spec != spec:
                raise EpisodeError(f"stream {spec.path!r} registered twice with different layouts")
            return tee

    add_stream = stream  # the Recorder's name, for drivers written against a recorder

    def streams(self) -> list[TeeStream]:
        with self._lock:
            return list(self._streams.values())

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None:
        t_ns = now_ns() if t_ns is None else t_ns
        for listener in self.on_event:
            try:
                listener(kind, t_ns, detail)
            except Exception:
                log.exception("event listener failed for %s", kind)
        recorder = self.recorder
        if recorder is not None and recorder.start_t_ns and t_ns >= recorder.start_t_ns:
            recorder.event(kind, t_ns=t_ns, **detail)

    # -- episodes -------------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def start(self, metadata: EpisodeMetadata) -> Recorder:
        with self._episode_lock:
            with self._lock:
                if self.recorder is not None:
                    raise EpisodeError(f"already recording {self.recorder.metadata.episode_id}")
                recorder = Recorder(RecorderConfig(self.out_dir), metadata)
                # Attached before the recorder starts: rows count from its start_t_ns, with no gap after it.
                self._cut = _OPEN_END
                for tee in self._streams.values():
                    tee._target = (recorder.add_stream(tee.spec), recorder, _OPEN_END)
                self.recorder = recorder
            recorder.on_fault.append(lambda message: self._recorder_faulted(recorder, message))
            try:
                recorder.start()
            except BaseException:
                with self._lock:
                    self._detach()
                raise
            for hook in self.on_start:
                hook(recorder)
            return recorder

    def _detach(self) -> None:
        for tee in self._streams.values():
            tee._target = None
        self.recorder = None

    def _recorder_faulted(self, recorder: Recorder, message: str) -> None:
        """Called on a writer thread: tell the listeners (the episode has its own `fault` event already), and
        finish the episode from another thread."""
        t_ns = now_ns()
        for listener in self.on_event:
            try:
                listener("fault", t_ns, {"reason": "recording_stopped", "message": message})
            except Exception:
                log.exception("event listener failed for fault")

        def finish() -> None:
            with self._episode_lock:
                if self.recorder is not recorder:
                    return  # already stopped by its owner
                try:
                    self.stop(reason="fault")
                except EpisodeError as exc:
                    log.error("%s", exc)
                    self.last = EpisodeResult(None, recorder.metadata.episode_id, recorder.metadata.outcome,
                                              fault=str(exc))

        threading.Thread(target=finish, name="excap-episode-fault", daemon=True).start()

    def stop(self, reason: str = "stop", outcome: str | None = None, discard: bool = False) -> EpisodeResult:
        with self._episode_lock:
            with self._lock:
                recorder = self.recorder
                if recorder is None:
                    raise EpisodeError("not recording")
                self._cut = now_ns()
                for tee in self._streams.values():
                    if tee._target is not None:
                        tee._target = (tee._target[0], recorder, self._cut)
            try:
                with recorder.stop_steps.step("flush"):
                    for flush in self.flush:  # without `_lock`: a driver finishing its row may register a stream
                        flush()
            finally:
                with self._lock:
                    self._detach()
                try:
                    with recorder.stop_steps.step("stop_hooks"):
                        for hook in self.on_stop:
                            hook(recorder)
                finally:
                    path = recorder.stop(outcome=outcome, reason=reason)
            result = EpisodeResult(path, recorder.metadata.episode_id, recorder.metadata.outcome, fault=recorder.fault)
            if discard:
                path.unlink(missing_ok=True)
                result = EpisodeResult(None, result.episode_id, result.outcome, discarded=True, fault=result.fault)
            self.last = result
            return result

    def set_outcome(self, outcome: str) -> None:
        with self._lock:
            if self.recorder is None:
                raise EpisodeError("not recording")
            self.recorder.set_outcome(outcome)
