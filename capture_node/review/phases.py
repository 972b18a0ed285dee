"""Phase proposals: which work phase (dig, swing_loaded, dump, swing_empty, travel, idle) an episode is in, when.

`propose_phases(episode)` infers phases from the recorded machine-function commands (/control) and the
decoded machine state (pump pressures, swing rate, track speeds) on a grid of `step_s` frames from the
episode start:

- travel: a travel command (or a moving track);
- dig: arm in together with bucket curl (pump pressure high raises the confidence);
- dump: bucket open;
- idle: no command and no swing or track motion (or the command path disabled);
- any other motion belongs to the swing of the current cycle: swing_loaded after a dig until the next dump,
  swing_empty after a dump (or before the first dig).

Frame labels are smoothed (a majority filter, then segments shorter than `min_segment_s` merged into a
neighbour) so the proposal does not flicker. Each phase carries a confidence in [0, 1]: the share of its
frames whose own evidence agrees with the label.

Wheel loaders are mapped onto the same roles (lift as boom, tilt as bucket, steer as swing, throttle as both
travel and crowd), which is a rough approximation; the rules were tuned on the simulated excavator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader, opened

LABELS = ("dig", "swing_loaded", "dump", "swing_empty", "travel", "idle")
SCRIPTED_PHASE_LABELS = {"ready": "idle", "return": "swing_empty", "dig": "dig", "swing_loaded": "swing_loaded",
                         "dump": "dump", "travel": "travel"}
ROLES = ("boom", "arm", "bucket", "swing", "travel")
FUNCTION_ROLES: dict[str, dict[str, tuple[str, ...]]] = {
    "excavator": {"boom": ("boom",), "arm": ("arm",), "bucket": ("bucket",), "swing": ("swing",),
                  "travel": ("travel_left", "travel_right")},
    "wheel_loader": {"boom": ("lift",), "arm": ("throttle",), "bucket": ("tilt",), "swing": ("steer",),
                     "travel": ("throttle",)},
}
PUMP_SIGNALS = ("HydraulicPressures1.PumpPressure1", "HydraulicPressures1.PumpPressure2")
SWING_RATE_SIGNAL = "SwingStatus.SwingRate"
TRACK_SIGNALS = ("TravelStatus.LeftTrackSpeed", "TravelStatus.RightTrackSpeed")

ACTIVE = 0.05  # |command| above this is a deliberate input
TRAVEL_COMMAND = 0.15
TRACK_SPEED = 0.1  # m/s
DIG_ARM = 0.2
DIG_BUCKET = 0.15
DUMP_BUCKET = -0.3
SWING_RATE = 2.0  # deg/s
DIG_PRESSURE = 150.0  # bar
_MOVE = "move"  # a motion frame before it is resolved into swing_loaded / swing_empty


@dataclass(frozen=True)
class Phase:
    t_start_ns: int
    t_end_ns: int
    label: str
    confidence: float = 1.0

    @property
    def duration_s(self) -> float:
        return (self.t_end_ns - self.t_start_ns) / 1e9


@dataclass(frozen=True)
class Marker:
    t_ns: int
    detail: dict[str, object]


@dataclass
class _Features:
    t_ns: np.ndarray
    roles: dict[str, np.ndarray]
    pump_bar: np.ndarray | None
    swing_rate: np.ndarray | None
    track_speed: np.ndarray | None
    enabled: np.ndarray


MAX_FRAMES = 864_000  # proposal frames of one episode: 24 h at the default 0.1 s


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


def _sampled(reader: EpisodeReader, name: str, t_ns: np.ndarray) -> np.ndarray | None:
    if not reader.has_signal(name):
        return None
    stream, column = reader.signal(name)
    values = np.asarray(stream.column(column), dtype=np.float64)
    index = stream.indices_at(t_ns)
    out = np.where(index >= 0, values[np.clip(index, 0, None)] if len(values) else np.nan, np.nan)
    return np.nan_to_num(out, nan=0.0)


def _max_abs(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    present = [np.abs(a) for a in arrays if a is not None]
    return np.max(present, axis=0) if present else None


def _features(reader: EpisodeReader, t_ns: np.ndarray) -> _Features:
    control = reader.stream("control")
    names = control.names("commands")
    commands = np.asarray(control.column("commands"), dtype=np.float64)
    index = control.indices_at(t_ns)
    valid = index >= 0
    enabled = np.asarray(control.column("enabled"), dtype=bool)[np.clip(index, 0, None)] & valid \
        if len(control) else np.zeros(len(t_ns), dtype=bool)
    kind = str(reader.metadata.get("machine_kind", "excavator"))
    mapping = FUNCTION_ROLES.get(kind, FUNCTION_ROLES["excavator"])
    roles: dict[str, np.ndarray] = {}
    for role in ROLES:
        columns = [names.index(f) for f in mapping[role] if f in names]
        if not columns or not len(control):
            roles[role] = np.zeros(len(t_ns))
            continue
        rows = commands[np.clip(index, 0, None)][:, columns]
        value = rows[np.arange(len(rows)), np.argmax(np.abs(rows), axis=1)]  # the strongest of the functions
        roles[role] = np.where(enabled, value, 0.0)
    pump = _max_abs([_sampled(reader, s, t_ns) for s in PUMP_SIGNALS])
    return _Features(t_ns, roles, pump, _sampled(reader, SWING_RATE_SIGNAL, t_ns),
                     _max_abs([_sampled(reader, s, t_ns) for s in TRACK_SIGNALS]), enabled)


def _frame_labels(f: _Features) -> np.ndarray:
    r = f.roles
    active = np.zeros(len(f.t_ns), dtype=bool)
    for role in ROLES:
        active |= np.abs(r[role]) > ACTIVE
    if f.swing_rate is not None:
        active |= np.abs(f.swing_rate) > SWING_RATE
    travel = np.abs(r["travel"]) > TRAVEL_COMMAND
    if f.track_speed is not None:
        travel |= f.track_speed > TRACK_SPEED
    dig = (r["arm"] > DIG_ARM) & (r["bucket"] > DIG_BUCKET)
    dump = r["bucket"] < DUMP_BUCKET
    labels = np.full(len(f.t_ns), "idle", dtype=object)
    labels[active] = _MOVE
    labels[travel] = "travel"
    labels[dump] = "dump"
    labels[dig] = "dig"
    return labels


def _majority(labels: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(labels) < window:
        return labels.copy()
    half = window // 2
    out = labels.copy()
    for i in range(len(labels)):
        values, counts = np.unique(labels[max(0, i - half): i + half + 1], return_counts=True)
        best = counts.max()
        out[i] = labels[i] if counts[list(values).index(labels[i])] == best else values[np.argmax(counts)]
    return out


def _runs(labels: np.ndarray) -> list[list[Any]]:
    """[label, first, end) runs of equal labels."""
    runs: list[list[Any]] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1][2] = i + 1
        else:
            runs.append([label, i, i + 1])
    return runs


def _merge_short(labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Relabel runs shorter than `min_frames` (shortest first) with their longer neighbour's label."""
    labels = labels.copy()
    while True:
        runs = _runs(labels)
        if len(runs) <= 1:
            return labels
        short = [(int(r[2]) - int(r[1]), n) for n, r in enumerate(runs) if int(r[2]) - int(r[1]) < min_frames]
        if not short:
            return labels
        _, n = min(short)
        _, first, end = runs[n]
        before = runs[n - 1] if n > 0 else None
        after = runs[n + 1] if n + 1 < len(runs) else None
        if before is not None and after is not None and before[0] == after[0]:
            target = before[0]
        else:
            sizes = [(int(r[2]) - int(r[1]), r[0]) for r in (before, after) if r is not None]
            target = max(sizes, key=lambda s: s[0])[1]
        labels[int(first):int(end)] = target


def _resolve_swings(labels: np.ndarray) -> np.ndarray:
    """Motion after a dig (until a dump) is swing_loaded; any other motion is swing_empty."""
    out = labels.copy()
    loaded = False
    for label, first, end in _runs(labels):
        if label == "dig":
            loaded = True
        elif label == "dump":
            loaded = False
        elif label == _MOVE:
            out[int(first):int(end)] = "swing_loaded" if loaded else "swing_empty"
    return out


def _confidence(label: str, raw: np.ndarray, f: _Features, first: int, end: int) -> float:
    own = raw[first:end]
    expected = _MOVE if label in ("swing_loaded", "swing_empty") else label
    score = float(np.mean(own == expected)) if len(own) else 0.0
    if label == "dig" and f.pump_bar is not None:
        score = 0.5 * score + 0.5 * float(np.mean(f.pump_bar[first:end] > DIG_PRESSURE))
    return round(score, 3)


def propose_phases(episode: str | Path | EpisodeReader, step_s: float = 0.1, min_segment_s: float = 1.0,
                   majority_s: float = 0.5) -> list[Phase]:
    """Proposed work phases covering the episode from its start to its end, in time order."""
    with opened(episode) as reader:
        t_ns = frame_times(reader, step_s)
        if not len(t_ns):
            return []
        features = _features(reader, t_ns)
        end_ns = max(int(reader.metadata.get("end_t_ns") or 0), int(t_ns[-1]) + 1)
    raw = _frame_labels(features)
    smooth = _merge_short(_majority(raw, max(1, round(majority_s / step_s) | 1)),
                          max(1, round(min_segment_s / step_s)))
    labels = _resolve_swings(smooth)
    phases = []
    for label, first, end in _runs(labels):
        stop = int(t_ns[int(end)]) if int(end) < len(t_ns) else end_ns
        phases.append(Phase(int(t_ns[int(first)]), stop, str(label),
                            _confidence(str(label), raw, features, int(first), int(end))))
    return phases


def markers(episode: str | Path | EpisodeReader) -> list[Marker]:
    """The `marker` events the operator raised while recording."""
    with opened(episode) as reader:
        return [Marker(e.t_ns, e.detail) for e in reader.events() if e.kind == "marker"]


def scripted_phases(episode: str | Path | EpisodeReader) -> list[Phase]:
    """The scripted operator's own phases (`operator_phase` events of simulated episodes) as labels."""
    with opened(episode) as reader:
        changes = [(e.t_ns, SCRIPTED_PHASE_LABELS.get(str(e.detail.get("phase")), "idle"))
                   for e in reader.events() if e.kind == "operator_phase"]
        end_ns = int(reader.metadata.get("end_t_ns") or 0)
    phases = []
    for n, (t_ns, label) in enumerate(changes):
        stop = changes[n + 1][0] if n + 1 < len(changes) else max(end_ns, t_ns)
        if stop > t_ns:
            phases.append(Phase(t_ns, stop, label))
    return phases


def label_at(phases: list[Phase], t_ns: np.ndarray) -> np.ndarray:
    """The label of each time (None outside every phase)."""
    out = np.full(len(t_ns), None, dtype=object)
    for phase in phases:
        out[(t_ns >= phase.t_start_ns) & (t_ns < phase.t_end_ns)] = phase.label
    return out


def frame_agreement(proposed: list[Phase], reference: list[Phase], t_ns: np.ndarray) -> float:
    """Share of the frames `t_ns` covered by the reference whose proposed label equals the reference's."""
    truth = label_at(reference, t_ns)
    mine = label_at(proposed, t_ns)
    covered = truth != None  # noqa: E711 (element-wise)
    if not covered.any():
        return 0.0
    return float(np.mean(mine[covered] == truth[covered]))
