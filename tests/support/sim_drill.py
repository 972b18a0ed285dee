"""A stale-input drill on the simulated station: the scripted operator's joystick goes silent for longer than the
command link's stale timeout, then reports again. Watch it live (`LinkWatch`, a runtime event subscriber) and check
the episode it left (`check_drill`): neutral commands while the input was stale, commands restored after it."""

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from excap.episode.reader import parse_detail

STALL = (0.6, 0.4)
"""(at_s, for_s) after the station opens: 0.4 s of silence, four times the 0.1 s stale timeout."""


class LinkWatch:
    """Runtime event subscriber: whether a stale input was neutralised and the commands then restored."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        self.restored = threading.Event()

    def __call__(self, kind: str, _t_ns: int, detail: dict[str, Any]) -> None:
        if kind == "neutralised" and str(detail.get("reason", "")).startswith("input stale"):
            self.kinds.append(kind)
        elif kind == "command_restored" and "neutralised" in self.kinds:
            self.kinds.append(kind)
            self.restored.set()


@dataclass
class DrillResult:
    gap_s: float  # the longest silence of the joystick stream
    to_neutral_ms: float | None  # input turning stale (last sample + timeout) -> neutralised (None: it already was)
    to_restore_s: float  # from the input's return to the command_restored event
    enabled_after: int  # enabled command rows after the restore


def check_drill(path: Path, stale_timeout_s: float = 0.1, joystick: str = "operator") -> DrillResult:
    """Assert the drill in an episode: a joystick gap longer than the timeout; `neutralised` (input stale) right
    after it turned stale; nothing but neutral, disabled commands until `command_restored`; commands after it."""
    with h5py.File(path, "r") as f:
        t_joy = f[f"joystick/{joystick}/t_ns"][()]
        t_cmd = f["control/t_ns"][()]
        enabled = f["control/enabled"][()].astype(bool)
        values = f["control/commands"][()]
        events = [(int(t), k.decode() if isinstance(k, bytes) else str(k),
                   parse_detail(d.decode() if isinstance(d, bytes) else str(d)))
                  for t, k, d in zip(f["events/t_ns"][()], f["events/kind"][()], f["events/detail"][()], strict=True)]
    gaps = np.diff(t_joy)
    at = int(np.argmax(gaps))
    gap_start, gap_end = int(t_joy[at]), int(t_joy[at + 1])
    assert gaps[at] / 1e9 > 2 * stale_timeout_s, f"{path}: no joystick gap, the stall did not happen"
    link = [(t, kind, detail) for t, kind, detail in events if kind in ("neutralised", "command_restored")]
    before = [item for item in link if item[0] <= gap_end]
    # neutralised in the gap, or already (a loaded host can make an input stale once before) and not yet restored
    assert before and before[-1][1] == "neutralised" and str(before[-1][2].get("reason", "")).startswith(
        "input stale"), f"{path}: the link was not neutralised while the joystick was silent"
    neutral_t = before[-1][0]
    restored = [t for t, kind, _ in link if kind == "command_restored" and t > gap_end]
    assert restored, f"{path}: commands never restored after the joystick came back"
    stale_from = gap_start + int(stale_timeout_s * 1e9)
    held = (t_cmd > neutral_t) & (t_cmd < restored[0])
    assert held.sum() > 0 and not enabled[held].any() and not values[held].any(), \
        f"{path}: commands between neutralised and restored were not all neutral"
    after = t_cmd >= restored[0]
    assert enabled[after].sum() > 0, f"{path}: no enabled commands after the restore"
    return DrillResult(gap_s=gaps[at] / 1e9, to_neutral_ms=(neutral_t - stale_from) / 1e6 if neutral_t > gap_start
                       else None,
                       to_restore_s=(restored[0] - gap_end) / 1e9, enabled_after=int(enabled[after].sum()))
