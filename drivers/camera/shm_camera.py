"""A camera whose frames another process writes into a shared-memory ring (`excap.drivers.camera.shm_ring`).

Station config source `shm:<name>`. The frames come at the writer's rate whether or not this camera keeps up:
frames overwritten before the capture thread read them are counted in `counters.dropped`. Every frame goes to
`on_frame(t_ns, t_device_ns, bgr)` with `t_ns` taken when the capture thread took it and `t_device_ns` the frame's
sequence number times the ring's frame period (so gaps in the recorded stream show the frames lost before it).

A ring that is not there (yet) or goes away is a lost source: health DISCONNECTED, `on_event("camera_lost", ...)`,
reattached every `reconnect_interval_s` (`on_event("reconnect", ...)`).
"""

import logging

from excap.core.clock import now_ns
from excap.core.errors import DriverError
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.camera.callbacks import CameraCallbacks, EventCallback, FrameCallback
from excap.drivers.camera.config import CameraConfig, CameraInfo
from excap.drivers.camera.shm_ring import RingReader
from excap.drivers.reader import DeviceReader, Outage, SourceLost

log = logging.getLogger(__name__)

SHM_CAMERA_PREFIX = "shm:"


def is_shm_source(source: int | str) -> bool:
    return isinstance(source, str) and source.startswith(SHM_CAMERA_PREFIX)


class SharedMemoryCamera(CameraCallbacks):
    def __init__(self, config: CameraConfig, on_frame: FrameCallback, on_event: EventCallback | None = None) -> None:
        if not is_shm_source(config.source):
            raise DriverError(f"camera {config.name}: not a shared-memory source: {config.source}")
        self.config = config
        self.name = config.name
        self.ring_name = str(config.source)[len(SHM_CAMERA_PREFIX):]
        self._on_frame = on_frame
        self._on_event = on_event
        self.counters = DriverCounters()
        self.info: CameraInfo | None = None
        self.callback_errors = 0
        self.guard = ThreadGuard(f"camera/{config.name}")
        self._ring: RingReader | None = None
        self._reader: DeviceReader | None = None
        self._state = Health.STOPPED
        self._last_frame_ns = 0
        self._ring_drops = 0

    @property
    def health(self) -> Health:
        if self.guard.failed and self._state is not Health.STOPPED:
            return Health.FAILED
        if self._state is Health.OK and now_ns() - self._last_frame_ns > self.config.stale_after_s * 1e9:
            return Health.STALE
        return self._state

    def open(self, wait_for_source: bool = False) -> None:
        if self._reader is not None:
            raise DriverError(f"camera {self.name}: already open")
        attached = self._attach()
        if not attached and not wait_for_source:
            raise DriverError(f"camera {self.name}: cannot open shared-memory ring {self.ring_name}")
        reader = self._reader = DeviceReader(
            f"camera-{self.name}", guard=self.guard, counters=self.counters, connect=self._attach, read=self._read,
            release=self._release, lost=self._lost, back=self._back,
            retry_s=lambda: self.config.reconnect_interval_s, loss_errors=(OSError, DriverError, ValueError),
            connected=attached)
        if not attached:
            reader.lose("no ring")
        reader.start()

    def close(self, timeout: float = 10.0) -> None:
        if self._reader is not None:
            self._reader.stop(timeout)
            self._reader = None
        self._release()
        self._state = Health.STOPPED

    def __enter__(self) -> "SharedMemoryCamera":
        self.open()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()

    def _attach(self) -> bool:
        try:
            ring = RingReader(self.ring_name)
        except DriverError:
            return False
        fmt = ring.format
        self.info = CameraInfo(fmt.width, fmt.height, fmt.fps, "shm")
        self._ring = ring
        self._ring_drops = 0
        self._last_frame_ns = now_ns()
        self._state = Health.OK
        return True

    def _release(self) -> None:
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    def _lost(self, reason: str) -> None:
        self._state = Health.DISCONNECTED
        log.warning("camera %s: %s lost (%s)", self.name, self.source, reason)
        self._emit("camera_lost", reason=reason)

    def _back(self, outage: Outage) -> None:
        self._emit("reconnect", attempts=outage.attempts, down_s=round(outage.down_s, 3))

    def _read(self) -> None:
        ring = self._ring
        assert ring is not None
        period_ns = round(1e9 / ring.format.fps) if ring.format.fps > 0 else 0
        stale_s = self.config.stale_after_s
        reader = self._reader
        while reader is not None and not reader.stopping:
            if not ring.wait(min(0.1, stale_s)):
                if now_ns() - self._last_frame_ns > 2 * stale_s * 1e9:
                    raise SourceLost("no frames")
                continue
            for frame in ring.take():
                t_ns = now_ns()
                self._last_frame_ns = t_ns
                self._deliver(t_ns, frame.seq * period_ns, frame.image)
            if ring.dropped != self._ring_drops:
                self.counters.dropped += ring.dropped - self._ring_drops
                self._ring_drops = ring.dropped



__all__ = ["SHM_CAMERA_PREFIX", "SharedMemoryCamera", "is_shm_source"]
