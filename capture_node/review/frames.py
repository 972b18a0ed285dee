"""An episode on the phase-proposal grid: commands and decoded signals sampled every `step_s` from its start."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader

MAX_FRAMES = 864_000  # proposal frames of one episode: 24 h at the default 0.1 s


@dataclass
class Frames:
    """What a phase model sees: per frame time, the latest /control row and the latest value of each signal."""

    t_ns: np.ndarray
    step_s: float
    enabled: np.ndarray  # bool; False before the first /control row
    commands: dict[str, np.ndarray]  # machine function -> command (0 while disabled)
    signals: dict[str, np.ndarray]  # 'Message.Signal' -> value (NaN before its first sample); absent if not recorded

    def __len__(self) -> int:
        return len(self.t_ns)

    def command(self, *functions: str) -> np.ndarray:
        """The strongest (largest magnitude) of the named functions' commands; zeros if the episode has none."""
        present = [self.commands[f] for f in functions if f in self.commands]
        if not present:
            return np.zeros(len(self.t_ns))
        stacked = np.stack(present)
        return stacked[np.argmax(np.abs(stacked), axis=0), np.arange(len(self.t_ns))]

    def signal(self, name: str) -> np.ndarray | None:
        return self.signals.get(name)


def frame_times(reader: EpisodeReader, step_s: float) -> np.ndarray:
    """The proposal grid: start_t_ns + k * step, every frame before the episode end."""
    if not (math.isfinite(step_s) and step_s > 0):
        raise ValueError(f"step_s must be a positive number, is {step_s}")
    start = reader.start_t_ns
    end = int(reader.metadata.get("end_t_ns") or 0)
    if end <= start:
        control = reader.stream("control")
        end = int(control.t_ns[-1]) + 1 if len(control) else start
    step_ns = max(1, round(step_s * 1e9))
    count = max(0, math.ceil((end - start) / step_ns))
    if count > MAX_FRAMES:
        raise EpisodeError(f"{reader.path}: the episode spans {(end - start) / 1e9:.6g} s from start_t_ns to its "
                           f"end; phase proposals cover at most {MAX_FRAMES * step_s:.6g} s")
    return start + np.arange(count, dtype=np.int64) * step_ns


def _sampled(reader: EpisodeReader, name: str, t_ns: np.ndarray) -> np.ndarray:
    stream, column = reader.signal(name)
    values = np.asarray(stream.column(column), dtype=np.float64)
    index = stream.indices_at(t_ns)
    if not len(values):
        return np.full(len(t_ns), np.nan)
    return np.where(index >= 0, values[np.clip(index, 0, None)], np.nan)


def sample_frames(reader: EpisodeReader, t_ns: np.ndarray, step_s: float, signals: Iterable[str]) -> Frames:
    """The episode's commands and the named signals (those it has) at the times `t_ns`."""
    control = reader.stream("control")
    names = control.names("commands")
    index = control.indices_at(t_ns)
    rows = np.clip(index, 0, None)
    if len(control):
        enabled = np.asarray(control.column("enabled"), dtype=bool)[rows] & (index >= 0)
        values = np.asarray(control.column("commands"), dtype=np.float64)[rows]
    else:
        enabled = np.zeros(len(t_ns), dtype=bool)
        values = np.zeros((len(t_ns), len(names)))
    commands = {name: np.where(enabled, values[:, k], 0.0) for k, name in enumerate(names)}
    sampled = {name: _sampled(reader, name, t_ns) for name in signals if reader.has_signal(name)}
    return Frames(t_ns, step_s, enabled, commands, sampled)
