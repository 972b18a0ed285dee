"""Drawing of the review video's header and overlay panel: sticks, commands, machine signals, events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from excap.episode.reader import Event

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (235, 235, 235)
GREY = (120, 120, 120)
DARK = (40, 40, 40)
BACKGROUND = (24, 24, 24)
GREEN = (90, 200, 90)
ORANGE = (40, 150, 245)
RED = (60, 60, 230)
YELLOW = (40, 210, 240)

HEADER_HEIGHT = 34
PANEL_HEIGHT = 270
EVENT_SHOW_NS = 2_000_000_000  # an event's kind stays on screen this long after it happens
HIGHLIGHT_KINDS = ("marker", "fault", "drop", "recovered")

@dataclass
class PanelState:
    """Everything the overlay shows at one output frame time."""

    t_s: float  # from the episode start
    duration_s: float
    stick_axes: dict[str, float]  # axis name -> value in [-1, 1]
    commands: list[tuple[str, float]]
    enabled: bool | None
    signals: list[tuple[str, str]]  # label, formatted value
    event: Event | None  # latest event, if it happened within EVENT_SHOW_NS
    event_age_s: float
    timeline: list[tuple[float, bool]]  # every event: (fraction of the episode, highlighted)


def _text(image: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
          color: tuple[int, int, int] = WHITE, thickness: int = 1) -> None:
    cv2.putText(image, text, org, FONT, scale, color, thickness, cv2.LINE_AA)


LABEL_CHARS = 48


def event_label(event: Event) -> str:
    """`kind: key=value, ...`, at most LABEL_CHARS characters however large the event's detail."""
    parts = []
    for key, value in event.detail.items():
        if key != "episode_id":
            parts.append(f"{key}={str(value)[:LABEL_CHARS]}")
        if sum(len(p) for p in parts) > LABEL_CHARS:
            break
    detail = ", ".join(parts)
    return (f"{event.kind[:LABEL_CHARS]}: {detail}" if detail else event.kind)[:LABEL_CHARS]


def draw_header(image: np.ndarray, state: PanelState, title: str) -> None:
    height, width = HEADER_HEIGHT, image.shape[1]
    highlighted = state.event is not None and state.event.kind in HIGHLIGHT_KINDS
    image[:height] = (0, 90, 200) if highlighted else DARK
    _text(image, f"t = {state.t_s:7.2f} s / {state.duration_s:.1f} s"[:40], (10, 23), 0.6, WHITE, 1)
    _text(image, title, (260, 23), 0.45, GREY if not highlighted else WHITE)
    if state.event is not None:
        label = event_label(state.event)
        size = cv2.getTextSize(label, FONT, 0.6, 2)[0]
        _text(image, label, (width - size[0] - 10, 23), 0.6, YELLOW if not highlighted else WHITE, 2)


def finite(value: float) -> bool:
    """A value to draw; NaN and infinities (a device's "no value", as ROS recordings hold) are drawn as gaps."""
    return bool(np.isfinite(value))


def _number(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}" if finite(value) else "n/a"


def _stick(image: np.ndarray, center: tuple[int, int], radius: int, x: float, y: float, label: str) -> None:
    cv2.circle(image, center, radius, GREY, 1, cv2.LINE_AA)
    cv2.line(image, (center[0] - radius, center[1]), (center[0] + radius, center[1]), DARK, 1)
    cv2.line(image, (center[0], center[1] - radius), (center[0], center[1] + radius), DARK, 1)
    if finite(x) and finite(y):
        dot = (int(center[0] + np.clip(x, -1, 1) * radius), int(center[1] - np.clip(y, -1, 1) * radius))
        cv2.line(image, center, dot, GREEN, 2, cv2.LINE_AA)
        cv2.circle(image, dot, 8, GREEN, -1, cv2.LINE_AA)
    _text(image, label, (center[0] - radius, center[1] - radius - 10), 0.5)
    _text(image, f"x {_number(x)}  y {_number(y)}", (center[0] - radius, center[1] + radius + 22), 0.45, GREY)


def _vertical_bar(image: np.ndarray, x: int, top: int, height: int, value: float, label: str, row: int = 0) -> None:
    """A bar for one axis; `row` 1 puts its label and value a line further out, so neighbours' labels never meet."""
    middle = top + height // 2
    cv2.rectangle(image, (x, top), (x + 18, top + height), GREY, 1)
    if finite(value):
        end = int(middle - np.clip(value, -1, 1) * height / 2)
        cv2.rectangle(image, (x + 2, min(middle, end)), (x + 16, max(middle, end)), GREEN, -1)
    cv2.line(image, (x - 3, middle), (x + 21, middle), WHITE, 1)
    for text, y, color in ((label, top - 10 - 16 * row, WHITE), (_number(value), top + height + 22 + 16 * row, GREY)):
        width = cv2.getTextSize(text, FONT, 0.4, 1)[0][0]
        _text(image, text, (x + 9 - width // 2, y), 0.4, color)


@dataclass(frozen=True)
class StickLayout:
    """How a joystick's axes are drawn: each `<name>_x` / `<name>_y` pair (also `<name>X` / `<name>Y`, as in
    ABS_X / ABS_Y) as a stick labelled `<name>`, every other axis as a bar labelled with its own name (the names are
    the profile's axis names, or a device's own)."""

    sticks: tuple[tuple[str, str, str], ...]  # label, x axis, y axis
    bars: tuple[str, ...]  # axis names

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.sticks) + self.bars


MAX_STICKS = 2
STICK_PITCH = 170
BAR_PITCH = 56
LAST_BAR_X = 472  # bars are 18 px wide; the commands start at 500


def _first_bar(sticks: int) -> int:
    return 40 + STICK_PITCH * sticks


def stick_layout(axis_names: Sequence[str]) -> StickLayout:
    """The sticks and bars of a joystick with these axes, as many as the panel has room for."""
    sticks: list[tuple[str, str, str]] = []
    paired: set[str] = set()
    for name in axis_names:
        partner = name[:-1] + {"x": "y", "X": "Y"}.get(name[-1:], "")
        if partner != name[:-1] and partner in axis_names and len(sticks) < MAX_STICKS:
            sticks.append((name[:-1].rstrip("_") or name, name, partner))
            paired |= {name, partner}
    room = (LAST_BAR_X - _first_bar(len(sticks))) // BAR_PITCH + 1
    bars = tuple(n for n in axis_names if n not in paired)[:room]
    return StickLayout(tuple(sticks), bars)


def _sticks(panel: np.ndarray, axes: dict[str, float]) -> None:
    layout = stick_layout(list(axes))
    for k, (label, x_axis, y_axis) in enumerate(layout.sticks):
        _stick(panel, (100 + STICK_PITCH * k, 130), 72, axes[x_axis], axes[y_axis], label[:LABEL_CHARS // 2])
    for k, name in enumerate(layout.bars):
        _vertical_bar(panel, _first_bar(len(layout.sticks)) + BAR_PITCH * k, 58, 144, axes[name], name[:14],
                      row=k % 2)


def _commands(panel: np.ndarray, commands: list[tuple[str, float]], enabled: bool | None, x0: int) -> None:
    _text(panel, "machine-function commands", (x0, 28), 0.5)
    if enabled is not None:
        _text(panel, "ENABLED" if enabled else "DISABLED", (x0 + 250, 28), 0.45, GREEN if enabled else RED, 1)
    track = 200
    for k, (name, value) in enumerate(commands[:7]):
        y = 58 + 30 * k
        _text(panel, name[:12], (x0, y + 5), 0.45)
        left = x0 + 110
        middle = left + track // 2
        cv2.rectangle(panel, (left, y - 9), (left + track, y + 9), GREY, 1)
        if finite(value):
            end = int(middle + np.clip(value, -1, 1) * track / 2)
            color = ORANGE if abs(value) > 0.02 else GREY
            cv2.rectangle(panel, (min(middle, end), y - 7), (max(middle, end), y + 7), color, -1)
        cv2.line(panel, (middle, y - 12), (middle, y + 12), WHITE, 1)
        _text(panel, _number(value), (left + track + 8, y + 5), 0.42, GREY)


def _signals(panel: np.ndarray, signals: list[tuple[str, str]], x0: int) -> None:
    _text(panel, "machine", (x0, 28), 0.5)
    for k, (label, value) in enumerate(signals):
        y = 58 + 26 * k
        _text(panel, label, (x0, y), 0.45, GREY)
        _text(panel, value, (x0 + 110, y), 0.5)


def _timeline(panel: np.ndarray, state: PanelState) -> None:
    height, width = panel.shape[:2]
    y, left, right = height - 18, 10, width - 10
    cv2.line(panel, (left, y), (right, y), GREY, 1)
    for fraction, highlighted in state.timeline:
        x = int(left + np.clip(fraction if finite(fraction) else 0.0, 0, 1) * (right - left))
        cv2.line(panel, (x, y - (8 if highlighted else 5)), (x, y + (8 if highlighted else 5)),
                 RED if highlighted else YELLOW, 2 if highlighted else 1)
    fraction = state.t_s / state.duration_s if state.duration_s > 0 else 0.0
    x = int(left + np.clip(fraction if finite(fraction) else 0.0, 0, 1) * (right - left))
    cv2.circle(panel, (x, y), 5, WHITE, -1, cv2.LINE_AA)


def draw_panel(panel: np.ndarray, state: PanelState) -> None:
    """Draw the overlay into `panel` (PANEL_HEIGHT x width, BGR), which is cleared first."""
    panel[:] = BACKGROUND
    width = panel.shape[1]
    _sticks(panel, state.stick_axes)
    commands_x = 500
    signals_x = max(commands_x + 380, width - 260)
    _commands(panel, state.commands, state.enabled, commands_x)
    _signals(panel, state.signals, signals_x)
    _timeline(panel, state)


def format_signal(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "n/a"
    digits = 0 if abs(value) >= 100 else 1
    return f"{value:.{digits}f} {unit[:12]}".strip()


def visible_event(events: Sequence[Event], t_ns: int) -> tuple[Event | None, float]:
    """The latest event at or before t_ns if it happened less than EVENT_SHOW_NS ago, and its age in s."""
    latest = None
    for event in events:
        if event.t_ns <= t_ns and (latest is None or event.t_ns >= latest.t_ns):
            latest = event
    if latest is None or t_ns - latest.t_ns > EVENT_SHOW_NS:
        return None, 0.0
    return latest, (t_ns - latest.t_ns) / 1e9
