"""Reviewing excavators: work phases (dig, swing_loaded, dump, swing_empty, travel, idle) and key signals.

Phases come from the /control commands and the decoded machine state (pump pressures, swing rate, track speeds),
frame by frame:

- travel: a travel command (or a moving track);
- dig: arm in together with bucket curl (pump pressure high raises the confidence);
- dump: bucket open;
- idle: no command and no swing or track motion (or the command path disabled);
- any other motion belongs to the swing of the current cycle: swing_loaded after a dig until the next dump,
  swing_empty after a dump (or before the first dig).

The frame labels are smoothed (majority, short runs merged) before the swings are resolved.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from excap.review.frames import Frames
from excap.review.phase_model import FrameLabels, KindReview, ReviewSignal, Smoothing
from excap.review.smoothing import majority, merge_short, runs

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
FUNCTIONS = ("boom", "arm", "bucket", "swing", "travel_left", "travel_right")


def _max_abs(frames: Frames, names: tuple[str, ...]) -> np.ndarray | None:
    present = [np.abs(np.nan_to_num(v, nan=0.0)) for n in names if (v := frames.signal(n)) is not None]
    return np.max(present, axis=0) if present else None


def _evidence(frames: Frames) -> np.ndarray:
    arm, bucket = frames.command("arm"), frames.command("bucket")
    travel_command = frames.command("travel_left", "travel_right")
    active = np.zeros(len(frames), dtype=bool)
    for function in FUNCTIONS:
        active |= np.abs(frames.command(function)) > ACTIVE
    swing_rate = _max_abs(frames, (SWING_RATE_SIGNAL,))
    if swing_rate is not None:
        active |= swing_rate > SWING_RATE
    travel = np.abs(travel_command) > TRAVEL_COMMAND
    track_speed = _max_abs(frames, TRACK_SIGNALS)
    if track_speed is not None:
        travel |= track_speed > TRACK_SPEED
    labels = np.full(len(frames), "idle", dtype=object)
    labels[active] = _MOVE
    labels[travel] = "travel"
    labels[bucket < DUMP_BUCKET] = "dump"
    labels[(arm > DIG_ARM) & (bucket > DIG_BUCKET)] = "dig"
    return labels


def _resolve_swings(labels: np.ndarray) -> np.ndarray:
    """Motion after a dig (until a dump) is swing_loaded; any other motion is swing_empty."""
    out = labels.copy()
    loaded = False
    for label, first, end in runs(labels):
        if label == "dig":
            loaded = True
        elif label == "dump":
            loaded = False
        elif label == _MOVE:
            out[int(first):int(end)] = "swing_loaded" if loaded else "swing_empty"
    return out


class ExcavatorPhases:
    labels: tuple[str, ...] = ("dig", "swing_loaded", "dump", "swing_empty", "travel", "idle")
    truth_labels: Mapping[str, str] = {"ready": "idle", "return": "swing_empty", "dig": "dig",
                                       "swing_loaded": "swing_loaded", "dump": "dump", "travel": "travel"}
    signals: tuple[str, ...] = (*PUMP_SIGNALS, SWING_RATE_SIGNAL, *TRACK_SIGNALS)

    def label_frames(self, frames: Frames, smoothing: Smoothing) -> FrameLabels:
        raw = _evidence(frames)
        labels = _resolve_swings(merge_short(majority(raw, smoothing.majority_frames), smoothing.min_frames))
        expected = np.where(np.isin(labels, ("swing_loaded", "swing_empty")), _MOVE, labels)
        support = (raw == expected).astype(np.float64)
        pump = _max_abs(frames, PUMP_SIGNALS)
        if pump is not None:  # a dig is backed half by the commands, half by the pump working hard
            dig = labels == "dig"
            support[dig] = 0.5 * support[dig] + 0.5 * (pump[dig] > DIG_PRESSURE)
        return FrameLabels(labels, support)


REVIEW = KindReview(
    kind="excavator",
    signals=(
        ReviewSignal("engine speed", "EEC1.EngSpeed", "rpm"),
        ReviewSignal("boom pitch", "BoomSSI2.PitchAngleExRange", "deg"),
        ReviewSignal("arm pitch", "ArmSSI2.PitchAngleExRange", "deg"),
        ReviewSignal("bucket pitch", "BucketSSI2.PitchAngleExRange", "deg"),
        ReviewSignal("swing angle", "SwingStatus.SwingAngle", "deg"),
        ReviewSignal("pump 1", "HydraulicPressures1.PumpPressure1", "bar"),
        ReviewSignal("pump 2", "HydraulicPressures1.PumpPressure2", "bar"),
    ),
    phases=ExcavatorPhases(),
)
