"""JPEG encoding off the capture thread: one encoder thread per camera, fed by a bounded queue.

A frame OpenCV cannot encode is dropped (a `drop` event); any other error escaping the encoder
thread is the camera's fault (`guard`, a `fault` event where the owner listens): the encoder stops
and later frames are counted as dropped without an event each.
"""

import queue
import threading
from typing import TYPE_CHECKING, Any, cast

import cv2
import numpy as np

from excap.drivers.base import ThreadGuard, one_line
from excap.drivers.limits import JPEG_QUALITY

if TYPE_CHECKING:
    from excap.record.switch import EpisodeSink, StreamSink

_STOP = object()


class JpegEncoder:
    """Takes raw frames from a camera thread without blocking it, encodes them, and records them.

    `recorder` is a `Recorder` or an `EpisodeSwitch`, `handle` its stream (`StreamHandle` or `TeeStream`).
    """

    def __init__(self, recorder: "EpisodeSink", handle: "StreamSink", quality: int = 90, backlog: int = 8) -> None:
        self.recorder = recorder
        self.handle = handle
        self.quality = JPEG_QUALITY.check(quality, f"{handle.spec.path}: jpeg quality")
        self._queue: queue.Queue[object] = queue.Queue(maxsize=backlog)
        self.guard = ThreadGuard(f"{handle.spec.path.replace('cameras/', 'camera/', 1)} encoder")
        self._thread = self.guard.thread(self._run, f"jpeg-{handle.spec.path}")
        self.dropped = 0
        self.encoded = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, t_ns: int, t_device_ns: int, image: Any) -> None:
        if self.guard.failed:
            self.dropped += 1  # the fault event says why
            return
        try:
            self._queue.put_nowait((t_ns, t_device_ns, image))
        except queue.Full:
            self.dropped += 1
            self.recorder.event("drop", t_ns=t_ns, stream=self.handle.spec.path, count=1, stage="encoder")

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until every frame submitted before this call is encoded and handed on (False: timed out)."""
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def stop(self) -> None:
        """Encode what is queued, then end the thread (at once if it has failed)."""
        while self._thread.is_alive():
            try:
                self._queue.put(_STOP, timeout=0.1)
                break
            except queue.Full:
                continue
        if self._thread.ident is not None:
            self._thread.join()

    def _run(self) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.quality]
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            t_ns, t_device_ns, image = cast(tuple[int, int, np.ndarray], item)
            self._encode(t_ns, t_device_ns, image, params)

    def _encode(self, t_ns: int, t_device_ns: int, image: np.ndarray, params: list[int]) -> None:
        try:
            ok, jpeg = cv2.imencode(".jpg", image, params)
        except cv2.error as exc:
            ok, reason = False, one_line(exc)
        else:
            reason = "not encoded"
        if not ok:
            self.dropped += 1
            self.recorder.event("drop", t_ns=t_ns, stream=self.handle.spec.path, count=1, stage="encoder",
                                reason=reason)
            return
        self.handle.put((t_ns, t_device_ns, jpeg.tobytes()))
        self.encoded += 1
