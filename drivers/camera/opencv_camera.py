"""One camera read through `cv2.VideoCapture`, on its own thread, with reconnection and health.

Sources: a device index (`0`), a device path (`/dev/video2`), a stream URL (`rtsp://...`, `http://...`)
or a video file, which can be replayed as a live source (`loop`, `realtime`).

Every frame goes to `on_frame(t_ns, t_device_ns, bgr)`: `t_ns` is host CLOCK_MONOTONIC
(excap.core.clock.now_ns) taken right after `grab()`; `t_device_ns` is the backend's own frame
time (`CAP_PROP_POS_MSEC`: presentation time for files and streams, the kernel buffer time for
V4L2 devices), 0 when the backend has none. For a looping file it keeps counting across loops.

The callback must not block: frames it cannot take are its own business. Frames the camera itself
skips (a paced file fell behind, failed grabs) are counted in `counters.dropped`.

When the source is lost (grabs fail, a non-looping file ends, the device is unplugged) the health
becomes DISCONNECTED, `on_event("camera_lost", ...)` is called and the source is reopened every
`reconnect_interval_s`; success calls `on_event("reconnect", ...)`. A file that ended is reopened
only once a different file is at its path. OpenCV and file-system errors count as a lost source;
any other error escaping the capture thread is the camera's fault (`guard`): health FAILED.
"""

import contextlib
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import DriverCounters, Health, ThreadGuard, one_line
from excap.drivers.config_schema import validate_whole
from excap.drivers.device_schema import CameraEntry

log = logging.getLogger(__name__)

FrameCallback = Callable[[int, int, np.ndarray], None]
"""(t_ns, t_device_ns, BGR image) -> None"""

EventCallback = Callable[[str, dict[str, Any]], None]
"""(kind, detail) -> None; kinds: "camera_lost", "reconnect"."""

_FILE_FPS_FALLBACK = 30.0


class SourceKind(StrEnum):
    DEVICE = "device"
    STREAM = "stream"
    FILE = "file"


def source_kind(source: int | str) -> SourceKind:
    if isinstance(source, int) or source.startswith("/dev/"):
        return SourceKind.DEVICE
    if "://" in source:
        return SourceKind.STREAM
    return SourceKind.FILE


@dataclass
class CameraConfig:
    """What to open and how. 0 for width, height or fps leaves the device's own setting.

    Checked against the station schema's camera entry (`excap.drivers.device_schema.CameraEntry`) when built.
    """

    name: str
    source: int | str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    backend: int | None = None
    """A `cv2.CAP_*` API; None: V4L2 for devices on Linux, FFMPEG for streams and files."""
    fourcc: str = ""
    """Pixel format asked of a device, e.g. "MJPG" (USB cameras give high rates only compressed)."""
    loop: bool = False
    """Files: start again at the end instead of ending the source."""
    realtime: bool = True
    """Files: deliver at the file's frame rate rather than as fast as decoding allows."""
    reconnect_interval_s: float = 1.0
    stale_after_s: float = 2.0
    max_grab_failures: int = 3
    """Consecutive failed grabs of a live source that count as losing it."""
    stream_timeout_s: float = 5.0
    """Streams: how long opening or reading may block."""

    def __post_init__(self) -> None:
        if isinstance(self.source, str) and self.source.strip().isdigit():
            self.source = int(self.source)
        entry = {"name": self.name, "source": self.source, "width": self.width or None, "height": self.height or None,
                 "fps": self.fps or None, "backend": self.backend, "fourcc": self.fourcc, "loop": self.loop,
                 "realtime": self.realtime, "reconnect_interval_s": self.reconnect_interval_s,
                 "stale_after_s": self.stale_after_s, "max_grab_failures": self.max_grab_failures,
                 "stream_timeout_s": self.stream_timeout_s}
        _, problems = validate_whole(CameraEntry, entry)
        if problems:
            raise ConfigError("\n".join(f"camera {self.name}: {p.key}: {p.message}" for p in problems))

    @classmethod
    def from_entry(cls, entry: CameraEntry) -> "CameraConfig":
        """The camera of a checked station-config entry (unset size and rate: 0, the device's own)."""
        return cls(name=entry.name, source=entry.source, width=entry.width or 0, height=entry.height or 0,
                   fps=float(entry.fps or 0.0), backend=entry.backend, fourcc=entry.fourcc, loop=entry.loop,
                   realtime=entry.realtime, reconnect_interval_s=float(entry.reconnect_interval_s),
                   stale_after_s=float(entry.stale_after_s), max_grab_failures=entry.max_grab_failures,
                   stream_timeout_s=float(entry.stream_timeout_s))

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.source)

    @property
    def api(self) -> int:
        if self.backend is not None:
            return self.backend
        if self.kind is SourceKind.DEVICE:
            return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return cv2.CAP_FFMPEG


@dataclass(frozen=True)
class CameraInfo:
    """What the source actually gives (files: their own size and rate)."""

    width: int
    height: int
    fps: float
    backend: str


class OpenCvCamera:
    def __init__(self, config: CameraConfig, on_frame: FrameCallback, on_event: EventCallback | None = None) -> None:
        self.config = config
        self.name = config.name
        self._on_frame = on_frame
        self._on_event = on_event
        self.counters = DriverCounters()
        self.info: CameraInfo | None = None
        self.callback_errors = 0
        self.reconnect_attempts = 0
        """Retries since the source was last lost."""
        self._state = Health.STOPPED
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.guard = ThreadGuard(f"camera/{config.name}")
        self._cap: cv2.VideoCapture | None = None
        self._last_frame_ns = 0
        self._down_since_ns = 0
        self._ended_file: tuple[int, ...] | None = None
        # per-connection file state
        self._period_s = 0.0
        self._pace_start = 0.0
        self._pace_index = 0
        self._loop_offset_ns = 0
        self._last_pos_ns = 0

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "OpenCvCamera":
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    @property
    def source(self) -> str:
        return str(self.config.source)

    @property
    def health(self) -> Health:
        if self.guard.failed and self._state is not Health.STOPPED:
            return Health.FAILED
        state = self._state
        if state is Health.OK and now_ns() - self._last_frame_ns > self.config.stale_after_s * 1e9:
            return Health.STALE
        return state

    def open(self, wait_for_source: bool = False) -> None:
        """Open the source and start capturing.

        A source that cannot be opened raises DriverError, unless `wait_for_source`: then the camera
        starts DISCONNECTED and keeps retrying like after a loss.
        """
        if self._thread is not None:
            raise DriverError(f"camera {self.name}: already open")
        cap = self._open_capture() if self._source_present() else None
        if cap is None and not wait_for_source:
            raise DriverError(f"camera {self.name}: cannot open {self.config.kind} {self.source}")
        self._stop.clear()
        if cap is None:
            self._lost("cannot open")
        else:
            self._attach(cap)
        self._thread = self.guard.thread(self._run, f"camera-{self.name}")
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and release the source. A stream read blocked past `timeout` is abandoned."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("camera %s: capture thread still blocked after %.1f s; abandoned", self.name, timeout)
            self._thread = None
        self._state = Health.STOPPED

    # -- opening ------------------------------------------------------------------------------

    def _source_present(self) -> bool:
        """Cheap check before asking OpenCV (which logs a warning for every failed open)."""
        cfg = self.config
        if isinstance(cfg.source, int):
            if cfg.api == cv2.CAP_V4L2 and sys.platform.startswith("linux"):
                return Path(f"/dev/video{cfg.source}").exists()
            return True
        if cfg.kind is SourceKind.STREAM:
            return True
        return Path(cfg.source).exists()

    def _open_capture(self) -> cv2.VideoCapture | None:
        cfg = self.config
        params: list[int] = []
        if cfg.kind is SourceKind.STREAM:
            ms = int(cfg.stream_timeout_s * 1000)
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        try:
            cap = cv2.VideoCapture(cfg.source, cfg.api, params)
            if not cap.isOpened():
                cap.release()
                return None
            if cfg.kind is not SourceKind.FILE:
                self._configure(cap)
            self.info = self._read_info(cap)
        except cv2.error as exc:
            log.warning("camera %s: opening %s failed: %s", self.name, self.source, exc)
            return None
        return cap

    def _configure(self, cap: cv2.VideoCapture) -> None:
        cfg = self.config
        if cfg.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
        if cfg.width > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height > 0:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps > 0:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)

    def _read_info(self, cap: cv2.VideoCapture) -> CameraInfo:
        cfg = self.config
        fps = cap.get(cv2.CAP_PROP_FPS)
        info = CameraInfo(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                          fps if math.isfinite(fps) and fps > 0 else 0.0, cap.getBackendName())
        if cfg.kind is not SourceKind.FILE and (
                (cfg.width and cfg.width != info.width) or (cfg.height and cfg.height != info.height)
                or (cfg.fps and abs(cfg.fps - info.fps) > 0.01)):
            log.warning("camera %s: asked %dx%d @ %.3g fps of %s, got %dx%d @ %.3g fps", self.name, cfg.width,
                        cfg.height, cfg.fps, self.source, info.width, info.height, info.fps)
        return info

    def _attach(self, cap: cv2.VideoCapture) -> None:
        self._cap = cap
        self._ended_file = None
        info = self.info
        self._period_s = 1.0 / (info.fps if info and info.fps > 0 else (self.config.fps or _FILE_FPS_FALLBACK))
        self._pace_start = 0.0
        self._pace_index = 0
        self._loop_offset_ns = 0
        self._last_pos_ns = 0
        self._last_frame_ns = now_ns()
        self._state = Health.OK

    def _file_identity(self) -> tuple[int, ...] | None:
        if self.config.kind is not SourceKind.FILE:
            return None
        try:
            st = os.stat(self.config.source)
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    # -- capture thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self._cap is None:
                        self._retry()
                    else:
                        reason = self._capture()
                        if reason:
                            self._release()
                            self._lost(reason)
                except (cv2.error, OSError) as exc:  # the source failed: lost, retried
                    log.warning("camera %s: capture failed: %s", self.name, one_line(exc))
                    self._release()
                    if not self._stop.is_set():
                        self._lost(f"error: {one_line(exc)}")
        finally:
            self._release()

    def _release(self) -> None:
        if self._cap is not None:
            with contextlib.suppress(cv2.error):
                self._cap.release()
            self._cap = None

    def _lost(self, reason: str) -> None:
        self._state = Health.DISCONNECTED
        self._down_since_ns = now_ns()
        self.reconnect_attempts = 0
        log.warning("camera %s: %s lost (%s); retrying every %.3g s", self.name, self.source, reason,
                    self.config.reconnect_interval_s)
        self._emit("camera_lost", reason=reason)

    def _retry(self) -> None:
        if self._stop.wait(self.config.reconnect_interval_s):
            return
        self.reconnect_attempts += 1
        if self._ended_file is not None and self._file_identity() == self._ended_file:
            return  # the file that ended is still there: wait for a new one
        cap = self._open_capture() if self._source_present() else None
        if cap is None:
            return
        self._attach(cap)
        self.counters.reconnects += 1
        info = self.info
        assert info is not None
        down_s = (now_ns() - self._down_since_ns) / 1e9
        log.info("camera %s: %s back after %.1f s", self.name, self.source, down_s)
        self._emit("reconnect", attempts=self.reconnect_attempts, down_s=round(down_s, 3), width=info.width,
                   height=info.height, fps=info.fps)

    def _capture(self) -> str:
        """Deliver frames until the source is lost or the camera stops; return why it was lost ("" on stop)."""
        cap = self._cap
        assert cap is not None
        is_file = self.config.kind is SourceKind.FILE
        failures = 0
        while not self._stop.is_set():
            if is_file and self.config.realtime and not self._pace(cap):
                if self._stop.is_set():
                    return ""
                self._ended_file = self._file_identity()
                return "end of file"
            if not self._grab(cap):
                if is_file:
                    self._ended_file = self._file_identity()
                    return "end of file"
                failures += 1
                self.counters.dropped += 1
                if failures >= self.config.max_grab_failures:
                    return f"{failures} grabs failed"
                continue
            t_ns = now_ns()
            failures = 0
            t_device_ns = self._device_time_ns(cap)
            ok, image = cap.retrieve()
            if not ok or image is None:
                self.counters.bad_frames += 1
                continue
            if self.info is not None and image.shape[1::-1] != (self.info.width, self.info.height):
                self.info = CameraInfo(image.shape[1], image.shape[0], self.info.fps, self.info.backend)
            self._last_frame_ns = t_ns
            self._deliver(t_ns, t_device_ns, image)
        return ""

    def _grab(self, cap: cv2.VideoCapture) -> bool:
        """Grab the next frame; a looping file starts again at its end."""
        if cap.grab():
            self._note_position(cap)
            return True
        if not (self.config.loop and self.config.kind is SourceKind.FILE):
            return False
        self._loop_offset_ns += self._last_pos_ns + round(self._period_s * 1e9)
        self._last_pos_ns = 0
        if not cap.set(cv2.CAP_PROP_POS_FRAMES, 0) or not cap.grab():
            return False
        self._note_position(cap)
        return True

    def _note_position(self, cap: cv2.VideoCapture) -> None:
        if self.config.kind is SourceKind.FILE:
            self._last_pos_ns = self._raw_device_time_ns(cap)

    @staticmethod
    def _raw_device_time_ns(cap: cv2.VideoCapture) -> int:
        ms = cap.get(cv2.CAP_PROP_POS_MSEC)
        return int(ms * 1e6) if math.isfinite(ms) and ms > 0 else 0

    def _device_time_ns(self, cap: cv2.VideoCapture) -> int:
        if self.config.kind is SourceKind.FILE:
            return self._loop_offset_ns + self._last_pos_ns
        return self._raw_device_time_ns(cap)

    def _pace(self, cap: cv2.VideoCapture) -> bool:
        """Wait until the next frame of a file is due; skip the frames it fell behind by. False: stop or end."""
        now = time.monotonic()
        if self._pace_index == 0:
            self._pace_start = now
        delay = self._pace_start + self._pace_index * self._period_s - now
        if delay > 0 and self._stop.wait(delay):
            return False
        if delay < -self._period_s:  # fell behind: a live source would have moved on
            skipped = int(-delay / self._period_s)
            for _ in range(skipped):
                if not self._grab(cap):
                    return False
                self.counters.dropped += 1
            self._pace_index += skipped
        self._pace_index += 1
        return True

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
