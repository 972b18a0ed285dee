"""What a camera is asked to open (`CameraConfig`, checked against the station schema) and what it gives."""

import sys
from dataclasses import dataclass
from enum import StrEnum

import cv2

from excap.core.errors import ConfigError
from excap.drivers.config_schema import validate_whole
from excap.drivers.device_schema import CameraEntry


class SourceKind(StrEnum):
    DEVICE = "device"
    STREAM = "stream"
    FILE = "file"


def source_kind(source: int | str) -> SourceKind:
    if isinstance(source, int) or source.startswith("/dev/"):
        return SourceKind.DEVICE
    if "://" in source:
        return SourceKind.STREAM
    return SourceKind.FILE


@dataclass
class CameraConfig:
    """What to open and how. 0 for width, height or fps leaves the device's own setting.

    Checked against the station schema's camera entry (`excap.drivers.device_schema.CameraEntry`) when built.
    """

    name: str
    source: int | str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    backend: int | None = None
    """A `cv2.CAP_*` API; None: V4L2 for devices on Linux, FFMPEG for streams and files."""
    fourcc: str = ""
    """Pixel format asked of a device, e.g. "MJPG" (USB cameras give high rates only compressed)."""
    loop: bool = False
    """Files: start again at the end instead of ending the source."""
    realtime: bool = True
    """Files: deliver at the file's frame rate rather than as fast as decoding allows."""
    reconnect_interval_s: float = 1.0
    stale_after_s: float = 2.0
    max_grab_failures: int = 3
    """Consecutive failed grabs of a live source that count as losing it."""
    stream_timeout_s: float = 5.0
    """Streams: how long opening or reading may block."""

    def __post_init__(self) -> None:
        if isinstance(self.source, str) and self.source.strip().isdigit():
            self.source = int(self.source)
        entry = {"name": self.name, "source": self.source, "width": self.width or None, "height": self.height or None,
                 "fps": self.fps or None, "backend": self.backend, "fourcc": self.fourcc, "loop": self.loop,
                 "realtime": self.realtime, "reconnect_interval_s": self.reconnect_interval_s,
                 "stale_after_s": self.stale_after_s, "max_grab_failures": self.max_grab_failures,
                 "stream_timeout_s": self.stream_timeout_s}
        _, problems = validate_whole(CameraEntry, entry)
        if problems:
            raise ConfigError("\n".join(f"camera {self.name}: {p.key}: {p.message}" for p in problems))

    @classmethod
    def from_entry(cls, entry: CameraEntry) -> "CameraConfig":
        """The camera of a checked station-config entry (unset size and rate: 0, the device's own)."""
        return cls(name=entry.name, source=entry.source, width=entry.width or 0, height=entry.height or 0,
                   fps=float(entry.fps or 0.0), backend=entry.backend, fourcc=entry.fourcc, loop=entry.loop,
                   realtime=entry.realtime, reconnect_interval_s=float(entry.reconnect_interval_s),
                   stale_after_s=float(entry.stale_after_s), max_grab_failures=entry.max_grab_failures,
                   stream_timeout_s=float(entry.stream_timeout_s))

    @property
    def kind(self) -> SourceKind:
        return source_kind(self.source)

    @property
    def api(self) -> int:
        if self.backend is not None:
            return self.backend
        if self.kind is SourceKind.DEVICE:
            return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return cv2.CAP_FFMPEG


@dataclass(frozen=True)
class CameraInfo:
    """What the source actually gives (files: their own size and rate)."""

    width: int
    height: int
    fps: float
    backend: str
