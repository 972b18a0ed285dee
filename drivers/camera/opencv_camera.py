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
from pathlib import Path

import cv2

from excap.core.clock import now_ns
from excap.core.errors import DriverError
from excap.core.periodic import Cadence, Late
from excap.drivers.base import DriverCounters, Health, ThreadGuard, one_line
from excap.drivers.camera.callbacks import CameraCallbacks, EventCallback, FrameCallback
from excap.drivers.camera.config import CameraConfig, CameraInfo, SourceKind, source_kind
from excap.drivers.reader import DeviceReader, Outage, SourceLost

__all__ = ["CameraConfig", "CameraInfo", "EventCallback", "FrameCallback", "OpenCvCamera", "SourceKind",
           "source_kind"]

log = logging.getLogger(__name__)

_FILE_FPS_FALLBACK = 30.0


class OpenCvCamera(CameraCallbacks):
    def __init__(self, config: CameraConfig, on_frame: FrameCallback, on_event: EventCallback | None = None) -> None:
        self.config = config
        self.name = config.name
        self._on_frame = on_frame
        self._on_event = on_event
        self.counters = DriverCounters()
        self.info: CameraInfo | None = None
        self.callback_errors = 0
        self._state = Health.STOPPED
        self._reader: DeviceReader | None = None
        self.guard = ThreadGuard(f"camera/{config.name}")
        self._cap: cv2.VideoCapture | None = None
        self._last_frame_ns = 0
        self._ended_file: tuple[int, ...] | None = None
        # per-connection file state
        self._period_s = 0.0
        self._pace: Cadence | None = None
        self._loop_offset_ns = 0
        self._last_pos_ns = 0

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> "OpenCvCamera":
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    @property
    def reconnect_attempts(self) -> int:
        """Retries since the source was last lost."""
        return 0 if self._reader is None else self._reader.attempts

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
        if self._reader is not None:
            raise DriverError(f"camera {self.name}: already open")
        cap = self._open_capture() if self._source_present() else None
        if cap is None and not wait_for_source:
            raise DriverError(f"camera {self.name}: cannot open {self.config.kind} {self.source}")
        reader = self._reader = DeviceReader(
            f"camera-{self.name}", guard=self.guard, counters=self.counters, connect=self._reopen,
            read=self._read, release=self._release, lost=self._lost, back=self._back,
            retry_s=lambda: self.config.reconnect_interval_s, loss_errors=(cv2.error, OSError),
            describe=self._capture_failed, connected=cap is not None)
        if cap is None:
            reader.lose("cannot open")
        else:
            self._attach(cap)
        reader.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread and release the source. A stream read blocked past `timeout` is abandoned."""
        if self._reader is not None:
            if not self._reader.stop(timeout):
                log.warning("camera %s: capture thread still blocked after %.1f s; abandoned", self.name, timeout)
            self._reader = None
        self._state = Health.STOPPED

    @property
    def _stopping(self) -> bool:
        return self._reader is None or self._reader.stopping

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
        self._pace = None
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

    def _read(self) -> None:
        reason = self._capture()
        if reason:
            raise SourceLost(reason)

    def _capture_failed(self, exc: BaseException) -> str:
        """An OpenCV or file-system error: the source is lost."""
        log.warning("camera %s: capture failed: %s", self.name, one_line(exc))
        return f"error: {one_line(exc)}"

    def _release(self) -> None:
        if self._cap is not None:
            with contextlib.suppress(cv2.error):
                self._cap.release()
            self._cap = None

    def _lost(self, reason: str) -> None:
        self._state = Health.DISCONNECTED
        log.warning("camera %s: %s lost (%s); retrying every %.3g s", self.name, self.source, reason,
                    self.config.reconnect_interval_s)
        self._emit("camera_lost", reason=reason)

    def _reopen(self) -> bool:
        if self._ended_file is not None and self._file_identity() == self._ended_file:
            return False  # the file that ended is still there: wait for a new one
        cap = self._open_capture() if self._source_present() else None
        if cap is None:
            return False
        self._attach(cap)
        return True

    def _back(self, outage: Outage) -> None:
        info = self.info
        assert info is not None
        log.info("camera %s: %s back after %.1f s", self.name, self.source, outage.down_s)
        self._emit("reconnect", attempts=outage.attempts, down_s=round(outage.down_s, 3), width=info.width,
                   height=info.height, fps=info.fps)

    def _capture(self) -> str:
        """Deliver frames until the source is lost or the camera stops; return why it was lost ("" on stop)."""
        cap = self._cap
        assert cap is not None
        is_file = self.config.kind is SourceKind.FILE
        failures = 0
        while not self._stopping:
            if is_file and self.config.realtime and not self._paced(cap):
                if self._stopping:
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

    def _paced(self, cap: cv2.VideoCapture) -> bool:
        """Wait until the next frame of a file is due; skip the frames it fell behind by, as a live source would
        have moved on (`Late.SKIP`). False: stop or end."""
        if self._pace is None:
            self._pace = Cadence(self._period_s, Late.SKIP)
        reader = self._reader
        if reader is None or reader.wait(self._pace.until_due()):
            return False
        for _ in range(self._pace.take().missed):
            if not self._grab(cap):
                return False
            self.counters.dropped += 1
        return True

