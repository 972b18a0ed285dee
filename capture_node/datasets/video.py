"""Writing camera frames as video files with PyAV (FFmpeg bundled with the `av` package)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import cast

import av
import numpy as np

from excap.core.errors import ExcapError

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only on stderr

PREFERRED_CODECS = ("libsvtav1", "libx264")  # AV1 is LeRobot's default; H.264 where SVT-AV1 is missing


def codec_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except Exception:  # PyAV raises different errors for unknown codecs across versions
        return False
    return True


def default_codec() -> str:
    for name in PREFERRED_CODECS:
        if codec_available(name):
            return name
    return "mpeg4"


SPEED_PRESETS = {"libsvtav1": "12", "libx264": "ultrafast", "libx265": "ultrafast"}  # each codec's fastest


def codec_options(codec: str, gop: int = 2, crf: int = 30) -> dict[str, str]:
    """Settings as LeRobot uses them: a keyframe every `gop` frames (fast random access), constant quality, and
    the codec's fastest preset (SVT-AV1's preset 12 is LeRobot's own; H.264/H.265 ultrafast)."""
    options = {"g": str(gop)}
    if codec in ("libsvtav1", "libx264", "libx265"):
        options["crf"] = str(crf)
    if codec in SPEED_PRESETS:
        options["preset"] = SPEED_PRESETS[codec]
    return options


@contextmanager
def _encoding(path: Path, width: int, height: int, codec: str) -> Iterator[None]:
    """An FFmpeg failure (e.g. a frame size the codec cannot encode) as one ExcapError line."""
    try:
        yield
    except (av.FFmpegError, ValueError) as exc:
        text = " ".join(str(exc).split())[:200]
        raise ExcapError(f"{path}: {codec} cannot encode {width}x{height} video ({type(exc).__name__}: "
                         f"{text})") from exc


class VideoWriter:
    """Frame k (RGB uint8, H x W x 3) is shown at k / fps; `close()` flushes the encoder and the file.

    Encoding failures raise ExcapError (one line naming the file, the codec and the frame size)."""

    def __init__(self, path: Path, width: int, height: int, fps: int, codec: str, pix_fmt: str = "yuv420p",
                 threads: int = 0) -> None:
        self.path = path
        self.fps = fps
        self.frames = 0
        # BGR frames go to the encoder as I420 converted by OpenCV (BT.601, limited range, as FFmpeg's own
        # conversion; about twice as fast): it needs even sizes
        self._i420 = pix_fmt == "yuv420p" and width % 2 == 0 and height % 2 == 0
        self._encoding = lambda: _encoding(path, width, height, codec)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._encoding():
            self._container = av.open(str(path), "w", format="mp4")
            self._stream = cast(av.VideoStream, self._container.add_stream(codec, rate=fps,
                                                                            options=codec_options(codec)))
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = pix_fmt
            self._stream.codec_context.time_base = Fraction(1, fps)
            if threads:  # 0: FFmpeg's choice (as many as the machine has cores)
                self._stream.codec_context.thread_count = threads

    def write_bgr(self, bgr: np.ndarray) -> None:
        """Write a BGR uint8 frame (as OpenCV decodes JPEG)."""
        if self._i420:
            import cv2

            self._write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), "yuv420p")
        else:
            self._write(bgr, "bgr24")

    def write(self, rgb: np.ndarray) -> None:
        self._write(rgb, "rgb24")

    def _write(self, image: np.ndarray, format: str) -> None:
        with self._encoding():
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format=format)
            frame.pts = self.frames
            frame.time_base = Fraction(1, self.fps)
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            with self._encoding():
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self._container.close()


def video_info(path: Path) -> dict[str, object]:
    """The `info` of a LeRobot video feature, read from the file."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt or stream.codec_context.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate) if stream.base_rate else 0,
            "video.channels": 3,
            "has_audio": False,
        }


def decode_rgb(path: Path) -> list[np.ndarray]:
    """Every frame of a video as RGB uint8 (for checks and tests)."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
