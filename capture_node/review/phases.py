"""Phase proposals: which work phase an episode is in, when, by the phase model of its machine kind.

`propose_phases(episode)` samples the episode's commands (/control) and the decoded signals its kind's phase model
reads on a grid of `step_s` frames from the episode start (`excap.review.frames`), lets the model label every
frame (`excap.review.kinds`: excavator dig / swing_loaded / dump / swing_empty / travel / idle, wheel loader
load / haul_loaded / dump / return_empty / idle), and returns the runs of equal labels as phases. Each phase
carries a confidence in [0, 1]: how far its frames' own evidence backs the label.

`scripted_phases(episode)` reads the simulator's ground truth (`operator_phase` events) as the same labels, and
`agreement` measures a proposal against it over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader, opened
from excap.review.frames import MAX_FRAMES, frame_times, sample_frames
from excap.review.kinds import kind_review, known_kinds
from excap.review.phase_model import PhaseModel, Smoothing
from excap.review.smoothing import runs

__all__ = [
    "MAX_FRAMES",
    "Marker",
    "Phase",
    "agreement",
    "every_label",
    "frame_agreement",
    "frame_times",
    "label_at",
    "labels_of",
    "markers",
    "phase_model",
    "propose_phases",
    "scripted_phases",
]


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


def phase_model(reader: EpisodeReader) -> PhaseModel:
    """The phase model of the episode's machine kind (EpisodeError naming the file for a kind without one)."""
    kind = str(reader.metadata.get("machine_kind", "excavator"))
    if kind not in known_kinds():
        raise EpisodeError(f"{reader.path}: no phase model for machine_kind {kind[:64]!r} (known: "
                           f"{', '.join(known_kinds())})")
    return kind_review(kind).phases


def labels_of(kind: str) -> tuple[str, ...]:
    """The phase labels of a machine kind."""
    return kind_review(kind).phases.labels


def every_label() -> tuple[str, ...]:
    """The phase labels of every known kind, each once."""
    return tuple(dict.fromkeys(label for kind in known_kinds() for label in labels_of(kind)))


def propose_phases(episode: str | Path | EpisodeReader, step_s: float = 0.1, min_segment_s: float = 1.0,
                   majority_s: float = 0.5) -> list[Phase]:
    """Proposed work phases covering the episode from its start to its end, in time order."""
    with opened(episode) as reader:
        model = phase_model(reader)
        t_ns = frame_times(reader, step_s)
        if not len(t_ns):
            return []
        frames = sample_frames(reader, t_ns, step_s, model.signals)
        end_ns = max(int(reader.metadata.get("end_t_ns") or 0), int(t_ns[-1]) + 1)
    smoothing = Smoothing(max(1, round(majority_s / step_s) | 1), max(1, round(min_segment_s / step_s)))
    labelled = model.label_frames(frames, smoothing)
    phases = []
    for label, first, end in runs(labelled.labels):
        stop = int(t_ns[int(end)]) if int(end) < len(t_ns) else end_ns
        confidence = round(float(np.mean(labelled.support[int(first):int(end)])), 3)
        phases.append(Phase(int(t_ns[int(first)]), stop, str(label), confidence))
    return phases


def markers(episode: str | Path | EpisodeReader) -> list[Marker]:
    """The `marker` events the operator raised while recording."""
    with opened(episode) as reader:
        return [Marker(e.t_ns, e.detail) for e in reader.events() if e.kind == "marker"]


def scripted_phases(episode: str | Path | EpisodeReader) -> list[Phase]:
    """The scripted operator's own phases (`operator_phase` events of simulated episodes) as labels."""
    with opened(episode) as reader:
        truth = phase_model(reader).truth_labels
        changes = [(e.t_ns, truth.get(str(e.detail.get("phase")), "idle"))
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


def agreement(proposed: list[Phase], reference: list[Phase]) -> tuple[float, float]:
    """(seconds in which the proposal has the reference's label, seconds the reference covers), exactly."""
    agreeing = covered = 0
    for truth in reference:
        covered += truth.t_end_ns - truth.t_start_ns
        for mine in proposed:
            if mine.label == truth.label:
                agreeing += max(0, min(mine.t_end_ns, truth.t_end_ns) - max(mine.t_start_ns, truth.t_start_ns))
    return agreeing / 1e9, covered / 1e9
