"""Small real JPEG frames for tests that write camera rows themselves (validation decodes every frame)."""

from functools import cache

import cv2
import numpy as np


@cache
def jpeg_frame(index: int = 0, width: int = 16, height: int = 16) -> bytes:
    """A decodable JPEG of `width` x `height`, different for each `index` (a noise pattern seeded by it)."""
    image = np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return encoded.tobytes()
