"""A replay: an episode's chosen streams, a window, a rate, and the sinks the samples go to."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from excap.core.errors import ConfigError
from excap.episode.reader import EpisodeReader
from excap.replay.scheduler import MAX_GAP_S, ReplayStats, Scheduler
from excap.replay.timeline import Sample, Timeline, select_paths


class Sink(Protocol):
    """Where samples go. `prepare` runs ahead of a sample's due time (convert, build); `emit` gets its result
    at the due time and only sends it."""

    def paths(self, reader: EpisodeReader) -> list[str]: ...
    def open(self) -> None: ...
    def prepare(self, sample: Sample) -> Any: ...
    def emit(self, prepared: Any) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class ReplayOptions:
    rate: float = 1.0
    start_s: float | None = None  # seconds from the episode start (root attribute start_t_ns)
    end_s: float | None = None
    loop: bool = False
    streams: Sequence[str] | None = None  # glob patterns of stream paths, e.g. ["control", "cameras/*"]
    max_gap_s: float = MAX_GAP_S  # longer stretches of recorded time without samples are shortened to this


def window_ns(reader: EpisodeReader, start_s: float | None, end_s: float | None) -> tuple[int | None, int | None]:
    """The recorded t_ns window of `--start` / `--end` (seconds from the episode's start_t_ns)."""
    if start_s is not None and start_s < 0:
        raise ConfigError(f"--start must be >= 0, not {start_s}")
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise ConfigError(f"--end ({end_s}) must be after --start ({start_s})")
    origin = reader.start_t_ns
    start = None if start_s is None else origin + round(start_s * 1e9)
    end = None if end_s is None else origin + round(end_s * 1e9)
    return start, end


class Replay:
    """Plays an open episode into sinks; `pause()`, `resume()`, `stop()` work from any thread."""

    def __init__(self, reader: EpisodeReader, sinks: Sequence[Sink], options: ReplayOptions | None = None) -> None:
        self.reader = reader
        self.sinks = list(sinks)
        self.options = options = options or ReplayOptions()
        if not self.sinks:
            raise ConfigError("nothing to replay into: choose a sink (--can and/or --ros)")
        sink_paths = [sink.paths(reader) for sink in self.sinks]
        wanted: list[str] = []
        for paths in sink_paths:
            wanted += [p for p in paths if p not in wanted]
        if options.streams:
            chosen = set(select_paths(reader.streams, options.streams))
            wanted = [p for p in wanted if p in chosen]
            if not wanted:
                raise ConfigError(f"--streams {','.join(options.streams)}: matches none of the streams replayed")
        order = [s.path for s in reader.streams]
        self.paths = sorted(wanted, key=order.index)
        self.start_ns, self.end_ns = window_ns(reader, options.start_s, options.end_s)
        self.timeline = Timeline(reader, self.paths, self.start_ns, self.end_ns)
        self.scheduler = Scheduler(options.rate, options.loop, max_gap_s=options.max_gap_s, end_ns=self.end_ns)
        self.scheduler.on_pause = self._on_pause
        self.scheduler.on_resume = self._on_resume
        self._routes: dict[str, list[Sink]] = {}
        for sink, paths in zip(self.sinks, sink_paths, strict=True):
            for path in paths:
                self._routes.setdefault(path, []).append(sink)

    def _on_pause(self) -> None:
        for sink in self.sinks:
            sink.pause()

    def _on_resume(self) -> None:
        for sink in self.sinks:
            sink.resume()

    def _prepare(self, sample: Sample) -> list[tuple[Sink, Any]]:
        return [(sink, sink.prepare(sample)) for sink in self._routes.get(sample.path, ())]

    @staticmethod
    def _emit(prepared: list[tuple[Sink, Any]]) -> None:
        for sink, item in prepared:
            sink.emit(item)

    def pause(self) -> bool:
        return self.scheduler.pause()

    def resume(self) -> bool:
        return self.scheduler.resume()

    def toggle(self) -> bool:
        return self.scheduler.toggle()

    def stop(self) -> None:
        self.scheduler.stop()

    @property
    def paused(self) -> bool:
        return self.scheduler.paused

    def run(self) -> ReplayStats:
        """Open the sinks, play (blocking until done or stopped), close the sinks."""
        opened: list[Sink] = []
        try:
            for sink in self.sinks:
                sink.open()
                opened.append(sink)
            # Everything loaded so far (ROS libraries, the file's metadata) lives as long as the replay: left out of
            # the garbage collector's full passes, which otherwise stop the replay for tens of milliseconds.
            gc.freeze()
            return self.scheduler.run(self.timeline, self._emit, origin_ns=self.start_ns,
                                      prepare=self._prepare)
        finally:
            gc.unfreeze()
            for sink in reversed(opened):
                sink.close()


def replay_episode(path: str | Path, sinks: Sequence[Sink], options: ReplayOptions | None = None) -> ReplayStats:
    """Open an episode, play it into `sinks` and return the statistics."""
    with EpisodeReader(path) as reader:
        return Replay(reader, sinks, options).run()
