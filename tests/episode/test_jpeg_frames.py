"""JPEG frames: the size a frame declares, read from its header, and decoding with limits."""

import cv2
import numpy as np
import pytest

from excap.episode.jpeg_frames import MAX_SIDE, FrameError, decode_jpeg, jpeg_size
from tests.support.hostile_episodes import jpeg_declaring


def jpeg(width: int, height: int) -> bytes:
    return cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))[1].tobytes()


def test_size_from_the_header_and_decoding() -> None:
    data = jpeg(37, 21)
    assert jpeg_size(data) == (37, 21)
    assert decode_jpeg(data).shape == (21, 37, 3)
    assert jpeg_size(jpeg_declaring(60000, 40000).tobytes()) == (60000, 40000)


@pytest.mark.parametrize("data,message", [
    (b"", "not a JPEG image"),
    (cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes(), "not a JPEG image"),
    (jpeg(16, 16)[:20], "a JPEG without a frame header"),
    (jpeg_declaring(MAX_SIDE + 1, 10).tobytes(), f"declares {MAX_SIDE + 1}x10 pixels"),
    (jpeg_declaring(8000, 8000).tobytes(), "declares 8000x8000 pixels"),  # each side fits, the area does not
    (jpeg_declaring(0, 16).tobytes(), "declares 0x16 pixels"),
    (jpeg(16, 16)[:jpeg(16, 16).find(b"\xff\xda")], "is not a decodable JPEG image"),
])
def test_frames_refused_in_one_line(data: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message) as caught:
        decode_jpeg(data)
    assert "\n" not in str(caught.value)
