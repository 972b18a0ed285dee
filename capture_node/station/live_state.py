"""What consumers of a running station see: the live-state records (command, camera frame, stream counters,
decoded signal values) and a consumer's `Subscription` to joystick samples, commands, frames and events."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from excap.drivers.joystick.base import JoystickSample

log = logging.getLogger("excap.station.runtime")


@dataclass(frozen=True)
class CommandState:
    """The command link's latest output: what was sent, whether enabled, and the link's state."""

    t_ns: int
    values: tuple[float, ...]
    enabled: bool
    link_state: str  # disabled | active | neutralised
    fault: str = ""


@dataclass(frozen=True)
class CameraFrame:
    camera: str
    t_ns: int
    t_device_ns: int
    jpeg: bytes


@dataclass(frozen=True)
class StreamState:
    """One stream's live counters (whether or not an episode records it)."""

    path: str
    rate_hz: float
    samples: int
    dropped: int
    staleness_s: float | None
    recording: bool


@dataclass(frozen=True)
class SignalValue:
    t_ns: int
    value: float
    unit: str


JoystickListener = Callable[[JoystickSample], None]
CommandListener = Callable[[CommandState], None]
FrameListener = Callable[[CameraFrame], None]
EventListener = Callable[[str, int, dict[str, Any]], None]


@dataclass(eq=False)
class Subscription:
    """Callbacks of one consumer; `cancel()` ends them. A callback that raises is logged, never propagated."""

    joystick: JoystickListener | None = None
    command: CommandListener | None = None
    frame: FrameListener | None = None
    event: EventListener | None = None
    _cancel: Callable[["Subscription"], None] | None = field(default=None, repr=False)
    _errors: int = field(default=0, repr=False)

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel(self)
            self._cancel = None

    def _call(self, callback: Callable[..., None] | None, *args: Any) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            self._errors += 1
            if self._errors == 1:
                log.exception("station runtime subscriber failed (further failures only counted)")
