"""What every camera driver does with its callbacks: a frame or event callback that raises never stops the camera
(the first failure is logged with its traceback, the rest only counted)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from excap.drivers.base import DriverCounters
from excap.drivers.camera.config import CameraConfig

log = logging.getLogger("excap.drivers.camera")

FrameCallback = Callable[[int, int, np.ndarray], None]
"""(t_ns, t_device_ns, BGR image) -> None"""
EventCallback = Callable[[str, dict[str, Any]], None]
"""(kind, detail) -> None; kinds: "camera_lost", "reconnect"."""


class CameraCallbacks:
    """Mixed into a camera driver that sets `config`, `name`, `counters`, `callback_errors`, `_on_frame` and
    `_on_event`."""

    config: CameraConfig
    name: str
    counters: DriverCounters
    callback_errors: int
    _on_frame: FrameCallback
    _on_event: EventCallback | None

    @property
    def source(self) -> str:
        return str(self.config.source)

    def _deliver(self, t_ns: int, t_device_ns: int, image: np.ndarray) -> None:
        try:
            self._on_frame(t_ns, t_device_ns, image)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.exception("camera %s: frame callback failed (further failures only counted)", self.name)
        self.counters.count_sample(t_ns)

    def _emit(self, kind: str, **detail: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(kind, {"camera": self.name, "source": self.source, **detail})
        except Exception:
            log.exception("camera %s: event callback failed for %s", self.name, kind)


__all__ = ["CameraCallbacks", "EventCallback", "FrameCallback"]
