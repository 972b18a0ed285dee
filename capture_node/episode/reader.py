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
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple

import h5py
import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.jpeg_frames import FrameError, decode_jpeg
from excap.episode.steps import Step, iter_steps, resolve_state_signals
from excap.episode.structure import check_structure, one_line

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


def plain(value: Any) -> Any:
    """An HDF5 attribute or scalar as a plain Python value (str for bytes, int/float/bool, lists)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()] if value.dtype.kind in "OS" else value.tolist()
    return value


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turn any failure of h5py reading `what` from a damaged file into one EpisodeError line."""
    try:
        yield
    except EpisodeError:
        raise
    except Exception as exc:  # h5py raises OSError, RuntimeError, KeyError, ValueError, ... on damaged files
        raise EpisodeError(f"{path}: {what} cannot be read ({one_line(exc)})") from exc


@dataclass(frozen=True)
class StreamInfo:
    path: str
    kind: str
    samples: int
    first_t_ns: int | None
    last_t_ns: int | None
    columns: tuple[str, ...]


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


def read_rows(dataset: h5py.Dataset, begin: int, end: int) -> np.ndarray:
    """Rows [begin, end) (clamped to the dataset) of a fixed-size dataset, read with h5py's low-level call: a
    replay reads blocks of every column while it keeps time, and slicing costs several times as much."""
    count = len(dataset)
    end = max(0, min(end, count))
    begin = max(0, min(begin, end))
    rows = np.empty((end - begin, *dataset.shape[1:]), dtype=dataset.dtype)
    if rows.size:
        file_space = dataset.id.get_space()
        file_space.select_hyperslab((begin,) + (0,) * (rows.ndim - 1), rows.shape)
        dataset.id.read(h5py.h5s.create_simple(rows.shape), file_space, rows)
    return rows


class Stream:
    """One stream of an episode, read lazily: `t_ns` once (cached), rows on demand.

    The reader checked the stream's structure when the file was opened (every column present, of the schema's
    dtype and rank, all of one length); reading values that turn out to be damaged raises EpisodeError."""

    def __init__(self, group: h5py.Group, info: StreamInfo, file: Path) -> None:
        self._group = group
        self.info = info
        self.path = info.path
        self.file = file
        self._t_ns: np.ndarray | None = None
        self._columns: dict[str, np.ndarray] = {}
        self._datasets: dict[str, tuple[h5py.Dataset, str]] = {}  # column -> (dataset, cell kind)

    def _reading(self, what: str = "") -> Any:
        return reading(self.file, f"/{self.path}{'/' + what if what else ''}")

    @property
    def t_ns(self) -> np.ndarray:
        """Sample times; for data streams (not events) they never decrease, else EpisodeError."""
        if self._t_ns is None:
            with self._reading("t_ns"):
                t_ns = np.asarray(self._group["t_ns"][()], dtype=np.int64)
            if self.info.kind != "events" and len(t_ns) > 1:
                backwards = np.flatnonzero(t_ns[1:] < t_ns[:-1])
                if backwards.size:
                    raise EpisodeError(f"{self.file}: /{self.path}/t_ns goes backwards {backwards.size} times "
                                       f"(first at row {int(backwards[0]) + 1})")
            self._t_ns = t_ns
        return self._t_ns

    @property
    def attrs(self) -> dict[str, Any]:
        """The group's attributes as plain values; one that cannot be read (damaged, not UTF-8) is left out."""
        with self._reading("attributes"):
            names = list(self._group.attrs.keys())
        values = {}
        for name in names:
            try:
                values[name] = plain(self._group.attrs[name])
            except Exception:  # a damaged or undecodable attribute: excap validate reports it
                continue
        return values

    def names(self, column: str) -> list[str]:
        """The `names` attribute of a column (e.g. command or axis names), empty if it has none."""
        with self._reading(column):
            return [str(n) for n in plain(self._group[column].attrs.get("names", []))]

    def unit(self, column: str) -> str:
        with self._reading(column):
            return str(plain(self._group[column].attrs.get("unit", "")))

    @property
    def dropped(self) -> int:
        """Rows this stream lost to a full queue (the group's `dropped` attribute; 0 if absent or not a count)."""
        value = self.attrs.get("dropped", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    @property
    def fd(self) -> bool:
        """True for a CAN FD channel (the group's `fd` attribute; false if absent or not true/false)."""
        return self.attrs.get("fd", False) is True

    def __len__(self) -> int:
        return self.info.samples

    def _position(self, index: int) -> int:
        count = len(self)
        position = int(index) + count if index < 0 else int(index)
        if not 0 <= position < count:
            raise IndexError(f"{self.path}: index {index} out of range for {count} samples")
        return position

    def _value(self, name: str, position: int) -> Any:
        with self._reading(f"{name}[{position}]"):
            dataset = self._group[name]
            if name in self._columns:
                value = self._columns[name][position]
            elif h5py.check_string_dtype(dataset.dtype) is not None:
                return dataset.asstr(errors="replace")[position]
            else:
                value = dataset[position]
            if h5py.check_vlen_dtype(dataset.dtype) is not None:
                return np.asarray(value, dtype=np.uint8).tobytes()
        return value.item() if isinstance(value, np.generic) else value

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Row `index` as {column: value}: numbers as Python scalars, vectors as numpy, JPEG frames as bytes."""
        position = self._position(index)
        return {name: self._value(name, position) for name in self.info.columns}

    def column(self, name: str) -> np.ndarray:
        """A whole fixed-size column, read once and cached (cheap for control, joystick and decoded CAN)."""
        if name == "t_ns":
            return self.t_ns
        if name not in self._columns:
            with self._reading(name):
                self._columns[name] = self._group[name][()]
        return self._columns[name]

    def _dataset(self, name: str) -> tuple[h5py.Dataset, str]:
        """A column's dataset (opened once) and how its cells come out: 'str', 'bytes' or 'value'."""
        if name not in self._datasets:
            dataset = self._group[name]
            dtype = dataset.dtype
            kind = ("str" if h5py.check_string_dtype(dtype) is not None
                    else "bytes" if h5py.check_vlen_dtype(dtype) is not None else "value")
            self._datasets[name] = (dataset, kind)
        return self._datasets[name]

    def cell_kind(self, name: str) -> str:
        """How a column's cells come out of `block`: 'str' (text), 'bytes' (JPEG frames as uint8) or 'value'."""
        with self._reading(name):
            return self._dataset(name)[1]

    def block(self, name: str, begin: int, end: int) -> np.ndarray:
        """Rows [begin, end) of a column, read from the file (strings as str, JPEG frames as uint8 arrays)."""
        with self._reading(f"{name}[{begin}:{end}]"):
            dataset, kind = self._dataset(name)
            if kind == "str":
                return np.asarray(dataset.asstr(errors="replace")[begin:end])
            if kind == "bytes":
                return np.asarray(dataset[begin:end])
            return read_rows(dataset, begin, end)

    def index_at(self, t_ns: int) -> int:
        """Index of the latest sample at or before `t_ns`, -1 if the stream has none by then."""
        return int(np.searchsorted(self.t_ns, t_ns, side="right")) - 1

    def indices_at(self, t_ns: np.ndarray) -> np.ndarray:
        """`index_at` for many times at once."""
        return np.searchsorted(self.t_ns, np.asarray(t_ns, dtype=np.int64), side="right").astype(np.int64) - 1


class CameraStream(Stream):
    """A camera stream: rows hold the JPEG bytes under `frames`; `image(i)` decodes one."""

    def jpeg(self, index: int) -> bytes:
        frame: bytes = self._value("frames", self._position(index))
        return frame

    def image(self, index: int) -> np.ndarray:
        """Frame `index` decoded to a BGR uint8 image; EpisodeError if it is not a JPEG of a sane size."""
        try:
            return decode_jpeg(self.jpeg(index))
        except FrameError as exc:
            raise EpisodeError(f"{self.file}: /{self.path} frame {index}: {exc}") from exc

    @property
    def nominal_fps(self) -> float:
        """The camera's nominal frame rate; 0.0 (unknown) if absent or not a finite positive number."""
        value = self.attrs.get("nominal_fps", 0)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            return 0.0
        return float(value)

    def frame_bytes(self, indices: Sequence[int]) -> list[int]:
        """Sizes in bytes of some frames (e.g. a sample of them, for statistics)."""
        return [len(self.jpeg(i)) for i in indices]


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
