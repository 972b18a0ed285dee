"""What reviewing one machine kind needs: its phase model and the machine signals reviews show.

Each kind has one module in `excap.review.kinds` (named after the profile's `kind`) whose `REVIEW` is a
`KindReview`; annotation, the review video and the signal plot take everything kind-specific from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from excap.review.frames import Frames


@dataclass(frozen=True)
class ReviewSignal:
    """A decoded machine signal as reviews show it."""

    label: str
    name: str  # 'Message.Signal'
    unit: str  # shown when the episode's DBC gives none


@dataclass(frozen=True)
class Smoothing:
    """How much the labels of frames are smoothed: a majority over `majority_frames`, then runs shorter than
    `min_frames` merged into a neighbour."""

    majority_frames: int
    min_frames: int


@dataclass(frozen=True)
class FrameLabels:
    labels: np.ndarray  # one label (str) per frame
    support: np.ndarray  # per frame in [0, 1]: how far the frame's own evidence backs its label


class PhaseModel(Protocol):
    """Proposes the work phase of every frame of an episode of one machine kind."""

    labels: tuple[str, ...]
    """Every label it proposes (and an engineer may store for this kind)."""
    truth_labels: Mapping[str, str]
    """The simulator's `operator_phase` values as labels."""
    signals: tuple[str, ...]
    """The decoded signals ('Message.Signal') it reads."""

    def label_frames(self, frames: Frames, smoothing: Smoothing) -> FrameLabels: ...


@dataclass(frozen=True)
class KindReview:
    kind: str
    signals: tuple[ReviewSignal, ...]
    """Key machine signals, in order: the review video's panel and the signal plot's default panels."""
    phases: PhaseModel
