"""Camera frames stored as JPEG: the size a frame declares (read from its header) and decoding with limits.

A frame's header is read before decoding, so a frame that claims an absurd size is refused instead of making
the decoder allocate for it.
"""

from __future__ import annotations

import numpy as np

MAX_SIDE = 8192  # pixels per side a frame may have
MAX_PIXELS = 40_000_000
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn markers (not DHT, JPG, DAC)
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn carry no length


class FrameError(ValueError):
    """A frame that is not a decodable JPEG image of a sane size."""


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame header, without decoding; None if no JPEG header is found."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in _START_OF_FRAME and position + 9 <= len(data):
            height = int.from_bytes(data[position + 5:position + 7], "big")
            width = int.from_bytes(data[position + 7:position + 9], "big")
            return width, height
        if length < 2:
            return None
        position += 2 + length
    return None


def decode_jpeg(data: bytes) -> np.ndarray:
    """A JPEG frame as a BGR uint8 image; FrameError (one line) if it is not a JPEG of a sane size."""
    import cv2  # only readers that decode frames need OpenCV; inspect and validate read headers only

    size = jpeg_size(data)
    if size is None:
        raise FrameError("not a JPEG image" if data[:2] != b"\xff\xd8" else "a JPEG without a frame header")
    width, height = size
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise FrameError(f"declares {width}x{height} pixels (at most {MAX_SIDE} per side and "
                         f"{MAX_PIXELS // 1_000_000} megapixels are decoded)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        raise FrameError(f"cannot be decoded ({' '.join(str(exc).split())[-120:]})") from exc
    if image is None:
        raise FrameError("is not a decodable JPEG image")
    return image
