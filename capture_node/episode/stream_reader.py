"""One stream of an open episode, read lazily: its times once, rows and blocks of rows on demand, camera frames
as JPEG bytes or decoded images. `EpisodeReader.stream()` hands them out (`excap.episode.reader`)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.jpeg_frames import FrameError, decode_jpeg
from excap.episode.structure import one_line


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
