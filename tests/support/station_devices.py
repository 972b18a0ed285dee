"""Devices for station tests built from real parts: a raw pseudo-terminal pair for a serial joystick, and a real
video file for a camera."""

import os
import tty
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

AXES = ["lx", "ly", "rx", "ry", "tl", "tr"]
BUTTONS = ["trigger", "b2", "b3"]


def write_video(path: Path, frames: int = 60, fps: float = 30.0) -> None:
    """An MJPG video of a white bar moving across a grey 160x120 frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for index in range(frames):
        image = np.full((120, 160, 3), 40, np.uint8)
        cv2.rectangle(image, (index * 2, 40), (index * 2 + 8, 80), (255, 255, 255), -1)
        writer.write(image)
    writer.release()


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pty: the test writes to the master fd, the device opens the slave by name."""
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)
