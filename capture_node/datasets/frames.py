"""Aligned frames of one episode for exports: EpisodeReader.steps at a fixed rate, as plain arrays.

Each frame is one step of `EpisodeReader.steps` (see docs/reader.md for the rule): the observation of each
stream is its latest sample at or before the step time, the action the /control row in force then. Frame
times are the measured step times relative to the first step of the episode, in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from capture_node.datasets.faces import FaceBlurrer
from capture_node.episode_reader import EpisodeReader
from capture_node.errors import ExcapError


@dataclass(frozen=True)
class Layout:
    """What every exported episode must share: cameras (name -> height, width), state and action names."""

    cameras: tuple[tuple[str, int, int], ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]

    @property
    def camera_names(self) -> list[str]:
        return [name for name, _, _ in self.cameras]


def episode_layout(path: Path) -> Layout:
    with EpisodeReader(path) as reader:
        cameras = []
        for camera_path in reader.paths("camera"):
            stream = reader.camera(camera_path)
            height, width = stream.image(0).shape[:2] if len(stream) else (0, 0)
            cameras.append((camera_path.split("/", 1)[1], int(height), int(width)))
        return Layout(tuple(cameras), tuple(reader.state_signals()), tuple(reader.command_names))


def common_layout(paths: list[Path]) -> Layout:
    """The layout shared by all episodes; an ExcapError names the first episode that differs."""
    if not paths:
        raise ExcapError("no episodes to export")
    first = episode_layout(paths[0])
    for path in paths[1:]:
        layout = episode_layout(path)
        if layout != first:
            raise ExcapError(f"{path}: cameras, state signals or commands differ from {paths[0].name} "
                             f"({layout} vs {first}); select episodes of one machine setup with the filters")
    return first


@dataclass
class Frame:
    index: int
    t_ns: int  # absolute step time (CLOCK_MONOTONIC ns)
    timestamp_s: float  # step time relative to the episode's first step
    state: np.ndarray  # float32
    action: np.ndarray  # float32
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera name -> RGB uint8 (H, W, 3)


@dataclass
class FrameCounters:
    faces_blurred: int = 0
    first_step_offset_s: float = 0.0  # first step time relative to the recording start


def iter_frames(path: Path, fps: float, layout: Layout, blurrer: FaceBlurrer | None = None,
                counters: FrameCounters | None = None) -> Iterator[Frame]:
    """The episode's aligned frames at `fps`; camera images as RGB, faces blurred when a blurrer is given."""
    counters = counters if counters is not None else FrameCounters()
    with EpisodeReader(path) as reader:
        first_t: int | None = None
        blurred: dict[str, tuple[int, np.ndarray]] = {}  # camera -> (source row, RGB image): frames repeat
        for step in reader.steps(rate_hz=fps, cameras=layout.camera_names, state_signals=list(layout.state_names),
                                 joysticks=False):
            if first_t is None:
                first_t = step.t_ns
                counters.first_step_offset_s = (step.t_ns - reader.start_t_ns) / 1e9
            images = {}
            for name in layout.camera_names:
                key = f"cameras/{name}"
                row = step.sources[key]
                cached = blurred.get(name)
                if cached is None or cached[0] != row:
                    image = step.observation[key]
                    if blurrer is not None:
                        image, faces = blurrer.blur(image)
                        counters.faces_blurred += faces
                    cached = (row, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
                    blurred[name] = cached
                images[name] = cached[1]
            yield Frame(step.index, step.t_ns, (step.t_ns - first_t) / 1e9,
                        np.asarray(step.observation.get("state", np.zeros(0)), dtype=np.float32),
                        np.asarray(step.action, dtype=np.float32), images)
