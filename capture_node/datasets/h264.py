"""H.264 MP4 files that browsers, VS Code and QuickTime play: libx264, yuv420p, `moov` atom first (faststart).

Written with PyAV (FFmpeg bundled with the `av` package of the `exports` extra); `excap render` uses it for
review videos when it is installed (`h264_available()`), else falls back to OpenCV's MPEG-4 Part 2.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from excap.core.errors import ExcapError

CODEC = "libx264"
PIX_FMT = "yuv420p"  # what every browser's H.264 decoder takes
CRF = 23
PRESET = "veryfast"
CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}


def h264_available() -> bool:
    try:
        av.codec.Codec(CODEC, "w")
    except Exception:  # PyAV raises different errors for unknown codecs across versions
        return False
    return True


def frame_rate(fps: float) -> Fraction:
    """`fps` as the exact fraction a container keeps (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class H264Writer:
    """Frame k (BGR uint8, height x width x 3) shows at k / fps; `close()` flushes the encoder and writes the index
    (`moov`) before the media data, so a player can start before the whole file has arrived."""

    codec = "h264"

    def __init__(self, path: Path, fps: float, width: int, height: int) -> None:
        if path.suffix.lower() not in CONTAINERS:
            raise ExcapError(f"{path}: H.264 review videos are .mp4, .m4v or .mov files")
        self.path = path
        self.rate = frame_rate(fps)
        self.frames = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(path), "w", format=CONTAINERS[path.suffix.lower()],
                                      options={"movflags": "+faststart"})
            stream = cast(av.VideoStream, self._container.add_stream(CODEC, rate=self.rate))
            stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
            stream.options = {"crf": str(CRF), "preset": PRESET}
            stream.codec_context.time_base = 1 / self.rate
            self._stream = stream
        except (av.FFmpegError, ValueError) as exc:
            raise ExcapError(f"{path}: cannot write {width}x{height} H.264 video ({' '.join(str(exc).split())})") \
                from exc

    def write(self, bgr: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
