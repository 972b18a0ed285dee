"""JPEG encoding of ROS image messages on the encoder's thread, never on the subscription callback."""

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from excap.record.jpeg import JpegEncoder
from excap.record.switch import EpisodeSwitch, TeeStream


class MessageJpegEncoder(JpegEncoder):
    """`submit(t_ns, t_device_ns, message)`: `to_image(message)` and the encoding run on the encoder thread."""

    def __init__(self, switch: EpisodeSwitch, tee: TeeStream, to_image: Callable[[Any], np.ndarray],
                 quality: int = 90, backlog: int = 8) -> None:
        super().__init__(switch, tee, quality, backlog)
        self.to_image = to_image
        self.tee = tee

    def submit(self, t_ns: int, t_device_ns: int, image: Any) -> None:
        before = self.dropped
        super().submit(t_ns, t_device_ns, image)
        if self.dropped != before:
            self.tee.extra_drops += 1

    def _encode(self, t_ns: int, t_device_ns: int, image: Any, params: list[int]) -> None:
        try:
            ok, jpeg = cv2.imencode(".jpg", self.to_image(image), params)
        except (ValueError, cv2.error):
            ok = False
        if ok:
            self.tee.put((t_ns, t_device_ns, jpeg.tobytes()))
            self.encoded += 1
        else:
            self.tee.reject()
