"""Time-aligned steps of an episode for learning code: (observation, action) pairs at a fixed rate.

Rule: steps fall at t0 + k / rate_hz (k = 0, 1, ...), t0 being the first time at which every
required stream has at least one sample (or `start_ns` if later); the last step is at or before
the earliest last sample among the required streams (or at or before `end_ns` if given). At step
time t each observation is the latest sample of its stream at or before t (sample t_ns <= t), and
the action is the latest /control row at or before t. Nothing is interpolated, and no sample
later than t is ever used.

Error bound: for a stream with samples at ... <= t_i <= t < t_{i+1} ..., the observation age
t - t_i satisfies 0 <= age < t_{i+1} - t_i: at most one sample period of that stream, or the
length of the gap (dropped or late samples) the step falls into. With the default end, every
required stream has a later sample, so this bound holds for every step. Each step reports the ages
in `obs_age_ns` and `action_age_ns`, so learning code can drop or weight stale steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from excap.core.errors import EpisodeError
from excap.schemas.machine_kinds import MACHINE_KINDS


def default_state_signals(machine_kind: str) -> tuple[str, ...]:
    """The default state vector of a machine kind (excap.schemas.machine_kinds): e.g. an excavator's boom, arm and
    bucket pitch, swing angle and engine speed; a wheel loader's articulation, lift and bucket angles, pressures,
    ground speed, gear, payload and engine speed. None for a kind the registry does not know."""
    entry = MACHINE_KINDS.get(machine_kind)
    return entry.state_signals if entry is not None else ()


class StreamColumns(Protocol):
    @property
    def columns(self) -> tuple[str, ...]: ...


class Stream(Protocol):
    """What steps read of a stream (excap.episode.reader.Stream is one)."""

    @property
    def path(self) -> str: ...
    @property
    def info(self) -> StreamColumns: ...
    @property
    def t_ns(self) -> np.ndarray: ...
    def __len__(self) -> int: ...
    def column(self, name: str) -> np.ndarray: ...
    def indices_at(self, t_ns: np.ndarray) -> np.ndarray: ...


class CameraStream(Stream, Protocol):
    def image(self, index: int) -> np.ndarray: ...
    def jpeg(self, index: int) -> bytes: ...


class EpisodeReader(Protocol):
    """What steps read of an episode (excap.episode.reader.EpisodeReader is one): the reader hands itself to
    `iter_steps`, so this module needs no import of the reader."""

    @property
    def path(self) -> Path: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    def paths(self, kind: str) -> list[str]: ...
    def stream(self, path: str) -> Stream: ...
    def camera(self, name_or_path: str) -> CameraStream: ...
    def signal(self, name: str) -> tuple[Stream, str]: ...
    def has_signal(self, name: str) -> bool: ...


@dataclass
class Step:
    """One aligned step. Observation keys: 'cameras/<name>' (BGR image, or JPEG bytes when not decoding),
    'state' (float64 vector of the state signals), 'joystick/<device>/axes' and '.../buttons'."""

    t_ns: int
    index: int
    observation: dict[str, Any]
    action: np.ndarray
    obs_age_ns: dict[str, int]
    action_age_ns: int
    sources: dict[str, int] = field(default_factory=dict)  # stream path -> row index used


def resolve_state_signals(reader: EpisodeReader, requested: Sequence[str] | None) -> list[str]:
    """The state signals a step carries: those requested (each must exist), or the defaults of the episode's
    machine kind that the episode has, in the registry's order."""
    if requested is None:
        defaults = default_state_signals(str(reader.metadata.get("machine_kind", "")))
        return [name for name in defaults if reader.has_signal(name)]
    for name in requested:
        reader.signal(name)  # raises EpisodeError naming the missing signal
    return list(requested)


def _camera_paths(reader: EpisodeReader, cameras: bool | Sequence[str]) -> list[str]:
    if cameras is True:
        return reader.paths("camera")
    if cameras is False:
        return []
    return [reader.camera(name).path for name in cameras]


MAX_STEPS = 10_000_000  # steps one call may yield: 11.6 days at 10 Hz; more means timestamps far apart
BLOCK_STEPS = 4096  # step times are computed and looked up this many at a time


def step_count(begin_ns: int, end_ns: int, rate_hz: float) -> int:
    """How many of the times begin + k / rate_hz fall at or before end (0 if end is before begin)."""
    if not (isinstance(rate_hz, int | float | np.number) and np.isfinite(rate_hz) and rate_hz > 0):
        raise ValueError(f"rate_hz must be a positive number, is {rate_hz}")
    if end_ns < begin_ns:
        return 0
    return int(np.floor((end_ns - begin_ns) / (1e9 / rate_hz) + 1e-9)) + 1


def step_times(begin_ns: int, end_ns: int, rate_hz: float, first: int = 0, count: int | None = None) -> np.ndarray:
    """begin + k / rate_hz in integer nanoseconds, for every k (from `first`, at most `count` of them) with the
    time at or before end."""
    total = step_count(begin_ns, end_ns, rate_hz)
    stop = total if count is None else min(total, first + count)
    if stop <= first:
        return np.zeros(0, dtype=np.int64)
    period = 1e9 / rate_hz
    times = begin_ns + np.round(np.arange(first, stop) * period).astype(np.int64)
    return times[times <= end_ns]


def iter_steps(reader: EpisodeReader, rate_hz: float, start_ns: int | None = None, end_ns: int | None = None,
               cameras: bool | Sequence[str] = True, state_signals: Sequence[str] | None = None,
               joysticks: bool = True, decode: bool = True) -> Iterator[Step]:
    control = reader.stream("control")
    camera_streams = [reader.camera(p) for p in _camera_paths(reader, cameras)]
    signals = [reader.signal(name) for name in resolve_state_signals(reader, state_signals)]
    joystick_streams = [reader.stream(p) for p in reader.paths("joystick")] if joysticks else []
    required: dict[str, Stream] = {control.path: control}
    for stream in [*camera_streams, *(s for s, _ in signals), *joystick_streams]:
        required[stream.path] = stream
    for stream in required.values():
        if len(stream) == 0:
            raise EpisodeError(f"{reader.path}: stream {stream.path!r} has no samples, no steps can be aligned")

    begin = max(int(s.t_ns[0]) for s in required.values())
    if start_ns is not None:
        begin = max(begin, int(start_ns))
    end = min(int(s.t_ns[-1]) for s in required.values()) if end_ns is None else int(end_ns)
    total = step_count(begin, end, rate_hz)
    if total > MAX_STEPS:
        raise EpisodeError(f"{reader.path}: the streams' samples span {(end - begin) / 1e9:.6g} s, {total} steps at "
                           f"{rate_hz:g} Hz (at most {MAX_STEPS}); the timestamps are far apart")
    return _generate(begin, end, rate_hz, total, required, control, camera_streams, signals, joystick_streams,
                     decode)


def _generate(begin: int, end: int, rate_hz: float, total: int, required: dict[str, Stream], control: Stream,
              camera_streams: list[CameraStream], signals: list[tuple[Stream, str]], joystick_streams: list[Stream],
              decode: bool) -> Iterator[Step]:
    commands = control.column("commands")
    signal_columns = [(stream, stream.column(column)) for stream, column in signals]
    last_image: dict[str, tuple[int, np.ndarray]] = {}
    for first in range(0, total, BLOCK_STEPS):
        times = step_times(begin, end, rate_hz, first, BLOCK_STEPS)
        indices = {path: stream.indices_at(times) for path, stream in required.items()}
        for offset, t in enumerate(times.tolist()):
            k = first + offset
            at = {path: int(index[offset]) for path, index in indices.items()}

            def age(stream: Stream, at: dict[str, int] = at, t: int = t) -> int:
                return t - int(stream.t_ns[at[stream.path]])

            observation: dict[str, Any] = {}
            ages: dict[str, int] = {}
            for camera in camera_streams:
                i = at[camera.path]
                if decode:
                    cached = last_image.get(camera.path)
                    if cached is None or cached[0] != i:
                        cached = (i, camera.image(i))
                        last_image[camera.path] = cached
                    observation[camera.path] = cached[1].copy()
                else:
                    observation[camera.path] = camera.jpeg(i)
                ages[camera.path] = age(camera)
            if signals:
                observation["state"] = np.array([values[at[stream.path]] for stream, values in signal_columns],
                                                dtype=np.float64)
                ages["state"] = max(age(stream) for stream, _ in signals)
            for joystick in joystick_streams:
                i = at[joystick.path]
                for column in ("axes", "buttons"):
                    if column in joystick.info.columns:
                        observation[f"{joystick.path}/{column}"] = np.array(joystick.column(column)[i])
                        ages[f"{joystick.path}/{column}"] = age(joystick)
            yield Step(t_ns=t, index=k, observation=observation, action=np.array(commands[at[control.path]]),
                       obs_age_ns=ages, action_age_ns=age(control), sources=at)
