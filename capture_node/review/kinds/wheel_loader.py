"""Reviewing wheel loaders: work phases of the loading cycle (load, haul_loaded, dump, return_empty, idle) and key
signals.

A loading cycle is: into the pile (load), back out and over to the truck (haul_loaded), tip the bucket over the
truck (dump), back away and drive to the pile again (return_empty). The proposal follows the cycle from the
loader's own signals (`schemas/can/wheel_loader_j1939.dbc`) and its commands, frame by frame:

- dig evidence: the arm low and the tilt cylinders' head pressure high (the bucket curling against the pile);
- dump evidence: the arm raised and the bucket tipping forward (a tilt-out command, tilt rod pressure, or the
  bucket angle falling fast);
- reverse: the transmission in reverse (TravelDirection), a reverse command, or the machine rolling backwards;
- idle: the command path disabled, or no command and no ground motion.

A frame with dig evidence starts `load`; going into reverse after a load starts `haul_loaded`; dump evidence
starts `dump`; going into reverse after a dump starts `return_empty`; anything else keeps the current phase (a
bucket weighed by the payload system while the proposal still says return_empty also starts `haul_loaded`). A
haul followed by another load before any dump was a second bite and is labelled `load`. The evidence is smoothed
by a majority filter first (dig evidence is kept even in a single frame: a short first bite is unmistakable), the
labels afterwards (short runs merged into a neighbour).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from excap.review.frames import Frames
from excap.review.phase_model import FrameLabels, KindReview, ReviewSignal, Smoothing
from excap.review.smoothing import majority, merge_short, runs

LIFT_ANGLE = "LoaderLinkage.LiftAngle"
BUCKET_ANGLE = "LoaderLinkage.BucketAngle"
TILT_HEAD = "LoaderPressures.TiltHeadPressure"
TILT_ROD = "LoaderPressures.TiltRodPressure"
GROUND_SPEED = "LoaderTravel.GroundSpeed"
TRAVEL_DIRECTION = "LoaderTravel.TravelDirection"
PAYLOAD = "LoaderPayload.BucketPayload"

ARM_LOW_DEG = -15.0  # the bucket is at the pile below this lift angle
ARM_RAISED_DEG = 5.0  # the bucket can reach over a truck above this lift angle
DIG_TILT_BAR = 70.0  # tilt head pressure of a bucket curling against the pile
DUMP_TILT_BAR = 45.0  # tilt rod pressure of a bucket being tipped out
DUMP_COMMAND = -0.3  # tilt command tipping the bucket out
DUMP_RATE_DEG_S = -10.0  # bucket angle falling faster than this
REVERSE_COMMAND = -0.5
REVERSE_SPEED = -0.2  # m/s
REVERSE_GEAR = 2  # TravelDirection: 0 neutral, 1 forward, 2 reverse
STILL_SPEED = 0.05  # m/s
ACTIVE = 0.05  # |command| above this is a deliberate input
WEIGHED_KG = 200.0  # a weighed bucket holding more than this is loaded

OFF, STILL, DIG, DUMP, REVERSE, FORWARD = "off", "still", "dig", "dump", "reverse", "forward"
BACKED_BY = {"load": (DIG, FORWARD), "haul_loaded": (REVERSE, FORWARD), "dump": (DUMP,),
             "return_empty": (REVERSE, FORWARD), "idle": (OFF, STILL)}


def _signal(frames: Frames, name: str) -> np.ndarray:
    """The signal (NaN where unknown: comparisons with it are False)."""
    values = frames.signal(name)
    return values if values is not None else np.full(len(frames), np.nan)


def _evidence(frames: Frames) -> np.ndarray:
    lift = _signal(frames, LIFT_ANGLE)
    bucket = _signal(frames, BUCKET_ANGLE)
    speed = _signal(frames, GROUND_SPEED)
    bucket_rate = np.gradient(bucket, frames.step_s) if len(frames) > 1 else np.zeros(len(frames))
    tilt = frames.command("tilt")
    low, raised = lift < ARM_LOW_DEG, lift > ARM_RAISED_DEG
    dig = low & (_signal(frames, TILT_HEAD) > DIG_TILT_BAR)
    dump = raised & ((tilt < DUMP_COMMAND) | (_signal(frames, TILT_ROD) > DUMP_TILT_BAR)
                     | (bucket_rate < DUMP_RATE_DEG_S))
    reverse = (frames.command("direction") < REVERSE_COMMAND) | (_signal(frames, TRAVEL_DIRECTION) == REVERSE_GEAR) \
        | (speed < REVERSE_SPEED)
    commanded = np.zeros(len(frames), dtype=bool)
    for function in ("lift", "tilt", "steer", "throttle"):
        commanded |= np.abs(frames.command(function)) > ACTIVE
    still = ~commanded & ~(np.abs(speed) > STILL_SPEED)
    evidence = np.full(len(frames), FORWARD, dtype=object)
    evidence[still] = STILL
    evidence[reverse] = REVERSE
    evidence[dig] = DIG
    evidence[dump] = DUMP
    evidence[~frames.enabled] = OFF
    return evidence


def _follow_cycle(evidence: np.ndarray, weighed: np.ndarray) -> np.ndarray:
    """The phase of each frame from the evidence, following the loading cycle."""
    labels = np.empty(len(evidence), dtype=object)
    phase = "return_empty"  # a machine starts with an empty bucket
    for i, seen in enumerate(evidence):
        if seen in (OFF, STILL):
            labels[i] = "idle"
            continue
        if seen == DIG:
            phase = "load"
        elif seen == DUMP:
            phase = "dump"
        elif seen == REVERSE and phase in ("load", "dump"):
            phase = "haul_loaded" if phase == "load" else "return_empty"
        elif phase == "return_empty" and weighed[i]:
            phase = "haul_loaded"
        labels[i] = phase
    return labels


def _second_bites(labels: np.ndarray) -> np.ndarray:
    """A haul followed by another load before any dump (idle between them aside) was a second bite: load."""
    out = labels.copy()
    active = [r for r in runs(labels) if r[0] != "idle"]
    for before, run, after in zip(active, active[1:], active[2:], strict=False):
        if before[0] == "load" and run[0] == "haul_loaded" and after[0] == "load":
            out[int(run[1]):int(run[2])] = "load"
    return out


class WheelLoaderPhases:
    labels: tuple[str, ...] = ("load", "haul_loaded", "dump", "return_empty", "idle")
    truth_labels: Mapping[str, str] = {phase: phase for phase in labels}
    signals: tuple[str, ...] = (LIFT_ANGLE, BUCKET_ANGLE, TILT_HEAD, TILT_ROD, GROUND_SPEED, TRAVEL_DIRECTION, PAYLOAD)

    def label_frames(self, frames: Frames, smoothing: Smoothing) -> FrameLabels:
        raw = _evidence(frames)
        evidence = majority(raw, smoothing.majority_frames)
        evidence[raw == DIG] = DIG  # a curl against the pile is unmistakable even in one frame: a short first bite
        weighed = _signal(frames, PAYLOAD) > WEIGHED_KG
        labels = merge_short(_second_bites(_follow_cycle(evidence, weighed)), smoothing.min_frames)
        support = np.zeros(len(frames))
        for label, backed_by in BACKED_BY.items():
            mine = labels == label
            support[mine] = np.isin(evidence[mine], backed_by)
        return FrameLabels(labels, support)


REVIEW = KindReview(
    kind="wheel_loader",
    signals=(
        ReviewSignal("engine speed", "EEC1.EngSpeed", "rpm"),
        ReviewSignal("ground speed", GROUND_SPEED, "m/s"),
        ReviewSignal("articulation", "LoaderArticulation.ArticulationAngle", "deg"),
        ReviewSignal("lift angle", LIFT_ANGLE, "deg"),
        ReviewSignal("bucket angle", BUCKET_ANGLE, "deg"),
        ReviewSignal("lift pressure", "LoaderPressures.LiftHeadPressure", "bar"),
        ReviewSignal("tilt pressure", TILT_HEAD, "bar"),
        ReviewSignal("payload", PAYLOAD, "kg"),
    ),
    phases=WheelLoaderPhases(),
)
