"""The aligned steps of one episode as whole arrays: `EpisodeReader.steps`' rule (excap.episode.steps) computed
with numpy for every step at once, so exports spend no Python time per step on alignment.

Each step's observation row of a stream is the latest sample at or before the step time and its action the
/control row in force then; the step times, rows, state vectors and actions equal those `EpisodeReader.steps`
yields (for the layout's cameras and state signals, without joysticks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from excap.core.errors import EpisodeError
from excap.datasets.frames import Layout
from excap.episode.reader import CameraStream, EpisodeReader, Stream
from excap.episode.steps import MAX_STEPS, step_count, step_times


@dataclass
class Alignment:
    times_ns: np.ndarray  # int64 absolute step times (CLOCK_MONOTONIC ns), one per step
    camera_rows: dict[str, np.ndarray]  # camera name -> the camera row each step shows (never decreasing)
    state: np.ndarray  # (steps, state signals) float32
    action: np.ndarray  # (steps, commands) float32
    first_step_offset_s: float  # first step time relative to the recording start

    def __len__(self) -> int:
        return len(self.times_ns)

    @property
    def timestamps(self) -> np.ndarray:
        """Step times relative to the first step, in seconds (float32, as LeRobot stores them)."""
        if not len(self.times_ns):
            return np.zeros(0, dtype=np.float32)
        return ((self.times_ns - self.times_ns[0]) / 1e9).astype(np.float32)


def align(reader: EpisodeReader, fps: float, layout: Layout) -> tuple[Alignment, dict[str, CameraStream]]:
    """The episode's steps at `fps` for `layout`, and its camera streams by name; EpisodeError as
    `EpisodeReader.steps` raises it (a required stream without samples, timestamps far apart, a missing signal)."""
    control = reader.stream("control")
    cameras = {name: reader.camera(name) for name in layout.camera_names}
    signals = [reader.signal(name) for name in layout.state_names]
    required: dict[str, Stream] = {control.path: control}
    for stream in [*cameras.values(), *(s for s, _ in signals)]:
        required[stream.path] = stream
    for stream in required.values():
        if len(stream) == 0:
            raise EpisodeError(f"{reader.path}: stream {stream.path!r} has no samples, no steps can be aligned")
    begin = max(int(s.t_ns[0]) for s in required.values())
    end = min(int(s.t_ns[-1]) for s in required.values())
    total = step_count(begin, end, fps)
    if total > MAX_STEPS:
        raise EpisodeError(f"{reader.path}: the streams' samples span {(end - begin) / 1e9:.6g} s, {total} steps at "
                           f"{fps:g} Hz (at most {MAX_STEPS}); the timestamps are far apart")
    times = step_times(begin, end, fps)
    rows = {path: stream.indices_at(times) for path, stream in required.items()}
    if signals:
        state = np.stack([np.asarray(stream.column(column))[rows[stream.path]] for stream, column in signals],
                         axis=1).astype(np.float64).astype(np.float32)
    else:
        state = np.zeros((len(times), 0), dtype=np.float32)
    action = np.asarray(control.column("commands"))[rows[control.path]].astype(np.float32)
    offset = (int(times[0]) - reader.start_t_ns) / 1e9 if len(times) else 0.0
    return (Alignment(times, {name: rows[stream.path] for name, stream in cameras.items()}, state, action, offset),
            cameras)
