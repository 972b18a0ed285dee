"""Episodes on demand: drivers write to streams that exist across episodes; a recorder is attached
while an episode runs (start / stop / discard from services), and every stream keeps its own
health counters (rate, drops, staleness) whether or not it is being recorded."""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture_node.clock import now_ns
from capture_node.episode import EpisodeMetadata
from capture_node.errors import EpisodeError
from capture_node.recorder import Recorder, RecorderConfig, StreamHandle
from capture_node.streams import StreamSpec

RATE_WINDOW_S = 1.0


class TeeStream:
    """A driver's end of one stream: counts, tells listeners, and records while an episode runs.

    Duck-compatible with `StreamHandle` (`spec`, `put`), so `JpegEncoder` can write to it.
    """

    def __init__(self, spec: StreamSpec, switch: "EpisodeSwitch") -> None:
        self.spec = spec
        self._switch = switch
        self.listeners: list[Callable[[tuple[Any, ...]], None]] = []
        self.count = 0
        self.rejected = 0
        self.extra_drops = 0  # e.g. frames an encoder could not keep up with
        self.last_t_ns: int | None = None
        self._window = (0, now_ns())
        self.rate_hz = 0.0
        self._handle: StreamHandle | None = None

    def put(self, row: tuple[Any, ...]) -> bool:
        self.count += 1
        self.last_t_ns = row[0]
        for listener in self.listeners:
            listener(row)
        handle = self._handle
        return handle.put(row) if handle is not None else True

    def reject(self) -> None:
        """A message that could not be turned into a row (wrong layout, undecodable)."""
        self.rejected += 1

    @property
    def dropped(self) -> int:
        handle = self._handle
        return self.rejected + self.extra_drops + (handle.queue.dropped if handle is not None else 0)

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


@dataclass
class EpisodeSwitch:
    """Holds the running episode, if any. Thread-safe; drivers never block on it."""

    out_dir: Path
    on_start: list[Callable[[Recorder], None]] = field(default_factory=list)
    on_stop: list[Callable[[Recorder], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._streams: dict[str, TeeStream] = {}
        self.recorder: Recorder | None = None
        self.last: EpisodeResult | None = None

    # -- streams ------------------------------------------------------------------------------

    def stream(self, spec: StreamSpec) -> TeeStream:
        """The stream at `spec.path` (created on first use, also in a running episode)."""
        with self._lock:
            tee = self._streams.get(spec.path)
            if tee is None:
                tee = TeeStream(spec, self)
                self._streams[spec.path] = tee
                if self.recorder is not None:
                    tee._handle = self.recorder.add_stream(spec)
            elif tee.spec != spec:
                raise EpisodeError(f"stream {spec.path!r} registered twice with different layouts")
            return tee

    def streams(self) -> list[TeeStream]:
        with self._lock:
            return list(self._streams.values())

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None:
        recorder = self.recorder
        if recorder is not None:
            recorder.event(kind, t_ns=t_ns, **detail)

    # -- episodes -----------------------------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def start(self, metadata: EpisodeMetadata) -> Recorder:
        with self._lock:
            if self.recorder is not None:
                raise EpisodeError(f"already recording {self.recorder.metadata.episode_id}")
            recorder = Recorder(RecorderConfig(self.out_dir), metadata)
            for tee in self._streams.values():
                recorder.add_stream(tee.spec)
            recorder.start()
            for hook in self.on_start:
                hook(recorder)
            for tee in self._streams.values():
                tee._handle = recorder.add_stream(tee.spec)
            self.recorder = recorder
            return recorder

    def stop(self, reason: str = "stop", outcome: str | None = None, discard: bool = False) -> EpisodeResult:
        with self._lock:
            recorder = self.recorder
            if recorder is None:
                raise EpisodeError("not recording")
            for tee in self._streams.values():
                tee._handle = None
            self.recorder = None
            try:
                for hook in self.on_stop:
                    hook(recorder)
            finally:
                path = recorder.stop(outcome=outcome, reason=reason)
            result = EpisodeResult(path, recorder.metadata.episode_id, recorder.metadata.outcome)
            if discard:
                path.unlink(missing_ok=True)
                result = EpisodeResult(None, result.episode_id, result.outcome, discarded=True)
            self.last = result
            return result

    def set_outcome(self, outcome: str) -> None:
        with self._lock:
            if self.recorder is None:
                raise EpisodeError("not recording")
            self.recorder.set_outcome(outcome)
