"""Reading episodes from learning and review code: streams, random access, and time-aligned steps.

```python
from excap.episode.reader import EpisodeReader

with EpisodeReader("episodes/20261123T011500Z_sim-excavator-01_3f9a2c.h5") as episode:
    side = episode.stream("cameras/side")
    image = side.image(side.index_at(t_ns))            # latest frame at or before t_ns, BGR
    for step in episode.steps(rate_hz=10):
        step.observation["cameras/side"], step.observation["state"], step.action
```

Alignment rule of `steps()`: steps fall at t0 + k / rate_hz, where t0 is the first time at which
every required stream (control, the chosen cameras, the messages of the state signals, the
joysticks) has at least one sample, and they end at the last time at which every required stream
still has a sample (the earliest last sample among them). At each step time t the observation of
each stream is its latest sample at or before t, and the action is the latest /control row at or
before t. Nothing is interpolated and nothing from the future is used.

Error bound: the age t - t_sample of an observation (reported per step in `obs_age_ns`) is
at least 0 and less than the interval between the two samples of that stream around t, so at
most one sample period of that stream, or the length of a gap where the stream had one.
`docs/reader.md` explains this in more detail.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

import h5py

from excap.core.errors import EpisodeError
from excap.episode.steps import Step, iter_steps, resolve_state_signals
from excap.episode.stream_reader import CameraStream, Stream, StreamInfo, plain, reading
from excap.episode.structure import check_structure

__all__ = ["STREAM_KINDS", "CameraStream", "EpisodeReader", "Event", "Stream", "StreamInfo", "opened", "parse_detail",
           "plain", "reading", "stream_kind"]

STREAM_KINDS = ("control", "joystick", "can", "can_decoded", "camera", "events")


def stream_kind(path: str) -> str:
    """The kind of a stream from its path: control, joystick, can, can_decoded, camera, events or other."""
    parts = path.split("/")
    if path == "control":
        return "control"
    if path == "events":
        return "events"
    if parts[0] == "joystick":
        return "joystick"
    if parts[0] == "cameras":
        return "camera"
    if parts[0] == "can":
        return "can_decoded" if len(parts) == 4 and parts[2] == "decoded" else "can"
    return "other"


class Event(NamedTuple):
    t_ns: int
    kind: str
    detail: dict[str, Any]


def parse_detail(text: str) -> dict[str, Any]:
    """An event's JSON detail as a dict: other JSON as {'value': ...}, anything else as {'text': ...}."""
    try:
        parsed = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        return {"text": text}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


class EpisodeReader:
    """An episode file opened read-only. Use as a context manager, or call `close()`.

    Opening checks the file's structure (excap.episode.structure) and refuses, with one EpisodeError
    line naming the file, anything readers could not read safely."""

    def __init__(self, path: str | Path, source: BinaryIO | None = None) -> None:
        """`source`: read the episode from this seekable binary file object instead (e.g. ranged reads of an
        object, excap.objectstore.ranged); `path` then only names it in messages."""
        self.path = Path(path)
        if source is None and not self.path.is_file():
            raise EpisodeError(f"{self.path}: no such file")
        with reading(self.path, "the file"):
            if source is None:
                size = self.path.stat().st_size
                if not h5py.is_hdf5(self.path):
                    raise EpisodeError(f"{self.path}: not an HDF5 file")
                self._file = h5py.File(self.path, "r")
            else:
                size = source.seek(0, io.SEEK_END)
                source.seek(0)
                self._file = h5py.File(source, "r")
        try:
            structure = check_structure(self._file, size)
            if structure.problems:
                more = len(structure.problems) - 1
                raise EpisodeError(f"{self.path}: {structure.problems[0]}"
                                   + (f" (and {more} more problems: excap validate lists them)" if more else ""))
            self.metadata: dict[str, Any] = {k: plain(v) for k, v in sorted(structure.metadata.items())}
            with reading(self.path, "the streams"):
                self.streams: list[StreamInfo] = [self._info(p, structure.columns[p], structure.lengths[p])
                                                  for p in structure.streams]
        except BaseException:
            self._file.close()
            raise
        self._streams: dict[str, Stream] = {}

    def _info(self, path: str, columns: tuple[str, ...], count: int) -> StreamInfo:
        t_ns = self._file[path]["t_ns"]
        return StreamInfo(path, stream_kind(path), count, int(t_ns[0]) if count else None,
                          int(t_ns[count - 1]) if count else None,
                          ("t_ns", *sorted(n for n in columns if n != "t_ns")))

    def __enter__(self) -> EpisodeReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    @property
    def start_t_ns(self) -> int:
        return int(self.metadata.get("start_t_ns", 0))

    def paths(self, kind: str) -> list[str]:
        """Paths of every stream of one kind, sorted."""
        return [s.path for s in self.streams if s.kind == kind]

    def stream(self, path: str) -> Stream:
        path = path.strip("/")
        if path not in self._streams:
            info = next((s for s in self.streams if s.path == path), None)
            if info is None:
                raise EpisodeError(f"{self.path}: no stream {path!r}")
            cls = CameraStream if info.kind == "camera" else Stream
            with reading(self.path, f"/{path}"):
                group = self._file[path]
            self._streams[path] = cls(group, info, self.path)
        return self._streams[path]

    def camera(self, name_or_path: str) -> CameraStream:
        path = name_or_path if name_or_path.startswith("cameras/") else f"cameras/{name_or_path}"
        stream = self.stream(path)
        if not isinstance(stream, CameraStream):
            raise EpisodeError(f"{self.path}: {path!r} is not a camera stream")
        return stream

    def signal(self, name: str) -> tuple[Stream, str]:
        """A decoded CAN signal named 'Message.Signal' (first channel that has it): its stream and column."""
        message, _, signal = name.partition(".")
        for path in self.paths("can_decoded"):
            stream = self.stream(path)
            if path.rsplit("/", 1)[-1] == message and signal in stream.info.columns \
                    and signal not in ("t_ns", "source_address"):
                return stream, signal
        raise EpisodeError(f"{self.path}: no decoded CAN signal {name!r}")

    def has_signal(self, name: str) -> bool:
        try:
            self.signal(name)
        except EpisodeError:
            return False
        return True

    def state_signals(self, requested: Sequence[str] | None = None) -> list[str]:
        """Names of the entries of a step's 'state' vector for `steps(state_signals=requested)`."""
        return resolve_state_signals(self, requested)

    @property
    def command_names(self) -> list[str]:
        """Names of the action vector's entries (the machine functions, in column order)."""
        return self.stream("control").names("commands")

    def events(self) -> list[Event]:
        """Every event as (t_ns, kind, detail dict), in recorded order."""
        if "events" not in {s.path for s in self.streams}:
            return []
        stream = self.stream("events")
        count = len(stream)
        t_ns, kinds, details = (stream.block(name, 0, count) for name in ("t_ns", "kind", "detail"))
        return [Event(int(t), str(kind), parse_detail(str(detail)))
                for t, kind, detail in zip(t_ns.tolist(), kinds.tolist(), details.tolist(), strict=True)]

    def steps(self, rate_hz: float, start_ns: int | None = None, end_ns: int | None = None,
              cameras: bool | Sequence[str] = True, state_signals: Sequence[str] | None = None,
              joysticks: bool = True, decode: bool = True) -> Iterator[Step]:
        """Time-aligned (observation, action) steps at `rate_hz`; see the module docstring for the rule."""
        return iter_steps(self, rate_hz, start_ns=start_ns, end_ns=end_ns, cameras=cameras,
                          state_signals=state_signals, joysticks=joysticks, decode=decode)

@contextmanager
def opened(episode: str | Path | EpisodeReader) -> Iterator[EpisodeReader]:
    """A reader for a path (opened here and closed after), or the given reader (left open)."""
    if isinstance(episode, EpisodeReader):
        yield episode
        return
    with EpisodeReader(episode) as reader:
        yield reader


__all__ = ["CameraStream", "EpisodeReader", "Event", "Step", "Stream", "StreamInfo", "opened", "plain", "stream_kind"]
