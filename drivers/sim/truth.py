"""Truth stamps: when the simulator produced each sample, kept beside the episode (never in it).

The simulated devices know when they produced every sample: the simulated machine the host monotonic time at
which it sends each J1939 frame, the scripted joystick the time at which it reads the sticks, a simulated camera
the time of each frame's capture. With a `TruthLog` switched on (`truth_log()`, for benches and tests), each of
them appends a `TruthStamp` per sample to it; with none switched on (the default) a device only checks one
module variable per sample.

The log is bounded (`capacity` stamps, the oldest go first; `overwritten` counts them), in memory, and shared by
every device of the process. `match_in_order` and `match_by_key` pair recorded rows with their stamps, so a bench
can measure the error of the recorded `t_ns` against the truth (`bench/timing_truth.py`).
"""

import threading
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

CAN = "can"
JOYSTICK = "joystick"
CAMERA = "camera"


@dataclass(frozen=True, slots=True)
class TruthStamp:
    kind: str
    """`can`, `joystick` or `camera`."""
    source: str
    """The producing device: `machine` (its CAN frames), the joystick's or the camera's name."""
    t_ns: int
    """Host monotonic time at which the simulator produced the sample."""
    key: Hashable
    """What identifies the sample in the episode: (CAN id, data bytes) of a frame, the joystick sample's
    `t_device_ns`, the camera frame's `t_device_ns` (its index times the frame period)."""


class TruthLog:
    """A bounded, thread-safe log of truth stamps."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        if capacity < 1:
            raise ValueError(f"truth log capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.overwritten = 0
        self._stamps: deque[TruthStamp] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, kind: str, source: str, t_ns: int, key: Hashable) -> None:
        with self._lock:
            if len(self._stamps) == self.capacity:
                self.overwritten += 1
            self._stamps.append(TruthStamp(kind, source, t_ns, key))

    def __len__(self) -> int:
        return len(self._stamps)

    def stamps(self, kind: str | None = None, source: str | None = None) -> list[TruthStamp]:
        """The stamps (of one kind, of one source), oldest first."""
        with self._lock:
            stamps = list(self._stamps)
        return [s for s in stamps if (kind is None or s.kind == kind) and (source is None or s.source == source)]


_active: TruthLog | None = None


def active() -> TruthLog | None:
    """The switched-on truth log, or None (the default: devices stamp nothing)."""
    return _active


@contextmanager
def truth_log(capacity: int = 1_000_000) -> Iterator[TruthLog]:
    """Switch truth stamps on for the devices of this process while the block runs."""
    global _active
    if _active is not None:
        raise RuntimeError("a truth log is already switched on")
    log = TruthLog(capacity)
    _active = log
    try:
        yield log
    finally:
        _active = None


@dataclass(frozen=True)
class Matched:
    """Recorded rows paired with truth stamps: `recorded_ns[i]` is the recorded `t_ns` of the sample produced at
    `truth_ns[i]`. `unmatched` counts recorded rows no stamp explains."""

    recorded_ns: np.ndarray
    truth_ns: np.ndarray
    unmatched: int

    @property
    def errors_ms(self) -> np.ndarray:
        """Recorded minus true time, in milliseconds (positive: recorded later than produced)."""
        errors: np.ndarray = (self.recorded_ns - self.truth_ns) / 1e6
        return errors


def match_by_key(stamps: Sequence[TruthStamp], keys: Sequence[Hashable], recorded_ns: Sequence[int]) -> Matched:
    """Pair rows with the stamp of the same key (each key unique, e.g. a frame index)."""
    truth = {s.key: s.t_ns for s in stamps}
    pairs = [(int(t), truth[k]) for k, t in zip(keys, recorded_ns, strict=True) if k in truth]
    return _matched(pairs, len(keys) - len(pairs))


def match_in_order(stamps: Sequence[TruthStamp], keys: Sequence[Hashable], recorded_ns: Sequence[int],
                   anchor: int = 16) -> Matched:
    """Pair rows with stamps whose keys repeat (CAN frames: the same id and data again and again), knowing both
    are in the order the device produced them and the rows are a stretch of the stamps, maybe with gaps.

    The first row goes with the stamp where the next `anchor` keys agree too, then rows and stamps are walked
    together; a stamp with no row (produced before the recording, or lost) is passed over."""
    stamp_keys = [s.key for s in stamps]
    start = _anchor(stamp_keys, list(keys), anchor)
    pairs: list[tuple[int, int]] = []
    unmatched = 0
    i = start if start is not None else len(stamps)
    for key, t in zip(keys, recorded_ns, strict=True):
        j = i
        while j < len(stamps) and stamp_keys[j] != key:
            j += 1
        if j == len(stamps):
            unmatched += 1
            continue
        pairs.append((int(t), stamps[j].t_ns))
        i = j + 1
    return _matched(pairs, unmatched)


def _anchor(stamp_keys: list[Hashable], keys: list[Hashable], length: int) -> int | None:
    if not keys:
        return None
    head = keys[:length]
    for i, key in enumerate(stamp_keys):
        if key == head[0] and stamp_keys[i:i + len(head)] == head:
            return i
    return None


def _matched(pairs: list[tuple[int, int]], unmatched: int) -> Matched:
    recorded = np.array([p[0] for p in pairs], dtype=np.int64)
    truth = np.array([p[1] for p in pairs], dtype=np.int64)
    return Matched(recorded, truth, unmatched)
