"""JPEG encoding off the capture thread: one encoder thread per camera, fed by a bounded queue."""

import queue
import threading
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from drivers.limits import JPEG_QUALITY

if TYPE_CHECKING:
    from capture_node.episode_switch import EpisodeSink, StreamSink

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
        self._thread = threading.Thread(target=self._run, name=f"jpeg-{handle.spec.path}", daemon=True)
        self.dropped = 0
        self.encoded = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, t_ns: int, t_device_ns: int, image: Any) -> None:
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
        """Encode what is queued, then end the thread."""
        self._queue.put(_STOP)
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
            t_ns, t_device_ns, image = item  # type: ignore[misc]
            self._encode(t_ns, t_device_ns, image, params)

    def _encode(self, t_ns: int, t_device_ns: int, image: np.ndarray, params: list[int]) -> None:
        ok, jpeg = cv2.imencode(".jpg", image, params)
        if ok:
            self.handle.put((t_ns, t_device_ns, jpeg.tobytes()))
            self.encoded += 1
