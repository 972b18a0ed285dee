"""JPEG encoding off the capture thread: one encoder thread per camera, fed by a bounded queue."""

import queue
import threading

import cv2
import numpy as np

from capture_node.recorder import Recorder, StreamHandle

_STOP = object()


class JpegEncoder:
    """Takes raw frames from a camera thread without blocking it, encodes them, and records them."""

    def __init__(self, recorder: Recorder, handle: StreamHandle, quality: int = 90, backlog: int = 8) -> None:
        self.recorder = recorder
        self.handle = handle
        self.quality = quality
        self._queue: queue.Queue[object] = queue.Queue(maxsize=backlog)
        self._thread = threading.Thread(target=self._run, name=f"jpeg-{handle.spec.path}", daemon=True)
        self.dropped = 0
        self.encoded = 0

    def start(self) -> None:
        self._thread.start()

    def submit(self, t_ns: int, t_device_ns: int, image: np.ndarray) -> None:
        try:
            self._queue.put_nowait((t_ns, t_device_ns, image))
        except queue.Full:
            self.dropped += 1
            self.recorder.event("drop", t_ns=t_ns, stream=self.handle.spec.path, count=1, stage="encoder")

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
            t_ns, t_device_ns, image = item  # type: ignore[misc]
            ok, jpeg = cv2.imencode(".jpg", image, params)
            if ok:
                self.handle.put((t_ns, t_device_ns, jpeg.tobytes()))
                self.encoded += 1
