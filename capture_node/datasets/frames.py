"""Aligned frames of one episode for exports: EpisodeReader.steps at a fixed rate, as plain arrays.

Each frame is one step of `EpisodeReader.steps` (see docs/reader.md for the rule): the observation of each
stream is its latest sample at or before the step time, the action the /control row in force then. Frame
times are the measured step times relative to the first step of the episode, in seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from excap.core.errors import EpisodeError, ExcapError
from excap.datasets.faces import FaceBlurrer
from excap.episode.jpeg_frames import FrameError, decode_jpeg
from excap.episode.reader import EpisodeReader


@dataclass(frozen=True)
class Layout:
    """What every exported episode must share: cameras (name -> height, width), state and action names."""

    cameras: tuple[tuple[str, int, int], ...]
    state_names: tuple[str, ...]
    action_names: tuple[str, ...]

    @property
    def camera_names(self) -> list[str]:
        return [name for name, _, _ in self.cameras]


@dataclass(frozen=True)
class SkippedEpisode:
    """An episode an export left out because it cannot be read as one (empty camera, undecodable frame, ...)."""

    episode_id: str
    file: str  # the episode's file name (no folders: export reports leave the station's paths behind)
    reason: str  # one line

    def line(self) -> str:
        return f"skipped {self.episode_id} ({self.file}): {self.reason}"

    def as_json(self) -> dict[str, str]:
        return {"episode_id": self.episode_id, "file": self.file, "reason": self.reason}


def skipped_episode(episode_id: str, path: Path, error: EpisodeError) -> SkippedEpisode:
    """The skip record of an episode whose reading raised `error` (its message without the file's path)."""
    reason = str(error)
    for prefix in (f"{path}: ", f"{path.name}: "):
        reason = reason.replace(prefix, "")
    return SkippedEpisode(episode_id, path.name, " ".join(reason.split()))


def episode_layout(path: Path, source: BinaryIO | None = None) -> Layout:
    """The cameras (size of their frames), state signals and commands of one episode; EpisodeError if a camera
    has no frames (a dead device), or its first and last frames cannot be decoded or differ in size. It reads
    the episode's metadata and two frames per camera (`source`: from this file object, see EpisodeReader)."""
    with EpisodeReader(path, source) as reader:
        cameras = []
        for camera_path in reader.paths("camera"):
            stream = reader.camera(camera_path)
            name = camera_path.split("/", 1)[1]
            if not len(stream):
                raise EpisodeError(f"{path}: camera {name!r} has no frames")
            height, width = stream.image(0).shape[:2]
            last = stream.image(len(stream) - 1).shape[:2]
            if last != (height, width):
                raise EpisodeError(f"{path}: camera {name!r}: the first frame is {width}x{height}, the last "
                                   f"{last[1]}x{last[0]}")
            cameras.append((name, int(height), int(width)))
        return Layout(tuple(cameras), tuple(reader.state_signals()), tuple(reader.command_names))


def layout_from_metadata(path: Path, source: BinaryIO) -> Layout:
    """`episode_layout` read from a file object (e.g. ranged reads of an object in a store, excap.objectstore)
    with only what the layout needs: the root attribute machine_kind, the link names and column names of the
    camera, decoded CAN and control groups, the command names and the first and last frame of each camera (no
    sample data otherwise, and no structure check: the task that exports the episode opens it with
    EpisodeReader, which checks it). `path` names the episode in errors."""
    import h5py

    from excap.episode.reader import plain, reading
    from excap.episode.steps import default_state_signals

    with reading(path, "the layout"), h5py.File(source, "r") as handle:
        cameras = []
        group = handle.get("cameras")
        for name in sorted(group) if isinstance(group, h5py.Group) else []:
            stream = group[name]
            if not isinstance(stream, h5py.Group) or "t_ns" not in stream or "frames" not in stream:
                continue
            frames = stream["frames"]
            count = min(len(frames), len(stream["t_ns"]))
            if not count:
                raise EpisodeError(f"{path}: camera {name!r} has no frames")
            sizes = []
            for row in (0, count - 1):
                try:
                    sizes.append(decode_jpeg(np.asarray(frames[row], dtype=np.uint8).tobytes()).shape[:2])
                except FrameError as exc:
                    raise EpisodeError(f"{path}: /cameras/{name} frame {row}: {exc}") from exc
            (height, width), last = sizes
            if last != (height, width):
                raise EpisodeError(f"{path}: camera {name!r}: the first frame is {width}x{height}, the last "
                                   f"{last[1]}x{last[0]}")
            cameras.append((name, int(height), int(width)))
        columns: dict[str, set[str]] = {}  # decoded CAN message -> its signals (first channel that has it)
        for channel in sorted(handle.get("can", {})):
            decoded = handle["can"][channel].get("decoded")
            for message in sorted(decoded) if isinstance(decoded, h5py.Group) else []:
                if isinstance(decoded[message], h5py.Group) and "t_ns" in decoded[message]:
                    columns.setdefault(message, set(decoded[message]) - {"t_ns", "source_address"})
        kind = str(plain(handle.attrs.get("machine_kind", "")))
        state = [name for name in default_state_signals(kind)
                 if name.partition(".")[2] in columns.get(name.partition(".")[0], set())]
        if "control" not in handle or "commands" not in handle["control"]:
            raise EpisodeError(f"{path}: no stream 'control'")
        commands = [str(n) for n in plain(handle["control"]["commands"].attrs.get("names", []))]
        return Layout(tuple(cameras), tuple(state), tuple(commands))


def layout_text(layout: Layout) -> str:
    cameras = ", ".join(f"{name} {width}x{height}" for name, height, width in layout.cameras[:4])
    cameras += ", ..." if len(layout.cameras) > 4 else ""
    return (f"{len(layout.cameras)} cameras ({cameras}), {len(layout.state_names)} state signals, "
            f"{len(layout.action_names)} commands")


def common_layout(paths: Sequence[Path], episode_ids: Sequence[str] | None = None,
                  on_skip: Callable[[SkippedEpisode], None] | None = None,
                  chosen: Layout | None = None, layout_of: Callable[[Path], Layout] = episode_layout
                  ) -> tuple[Layout, dict[int, SkippedEpisode]]:
    """The layout most of the episodes share, and the episodes skipped (by their position in `paths`): those
    that cannot be read, and those of another machine setup (other cameras, camera sizes, state signals or
    commands). Ties go to the layout seen first. `on_skip` is called for each skipped episode (e.g. to raise in
    a strict export). With `chosen` (episodes added to an export), that layout is kept and episodes of any other
    are skipped. `layout_of(path)` reads one episode's layout (default: `episode_layout` of the local file)."""
    if not paths and chosen is None:
        raise ExcapError("no episodes to export")
    ids = list(episode_ids) if episode_ids is not None else [p.stem for p in paths]
    layouts: dict[int, Layout] = {}
    skipped: dict[int, SkippedEpisode] = {}
    for index, (path, episode_id) in enumerate(zip(paths, ids, strict=True)):
        try:
            layouts[index] = layout_of(path)
        except EpisodeError as exc:
            skipped[index] = skipped_episode(episode_id, path, exc)
    if not layouts and chosen is None:
        reasons = [s.line() for s in skipped.values()]
        more = "; ..." if len(reasons) > 3 else ""
        raise ExcapError("no episode can be exported: " + "; ".join(reasons[:3]) + more)
    counts = Counter(layouts.values())
    if chosen is None:
        chosen = max(counts, key=lambda layout: (counts[layout], -min(i for i, x in layouts.items() if x == layout)))
    for index, layout in layouts.items():
        if layout != chosen:
            others = counts[chosen]
            those = f"the {others} episode{'s' if others > 1 else ''}" if others else "the episodes"
            skipped[index] = SkippedEpisode(ids[index], paths[index].name,
                                            f"another machine setup: {layout_text(layout)}, unlike {those} "
                                            f"exported with {layout_text(chosen)}")
    ordered = {index: skipped[index] for index in sorted(skipped)}
    if on_skip is not None:
        for entry in ordered.values():
            on_skip(entry)
    return chosen, ordered


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
            for name, height, width in layout.cameras:
                key = f"cameras/{name}"
                row = step.sources[key]
                cached = blurred.get(name)
                if cached is None or cached[0] != row:
                    image = step.observation[key]
                    if image.shape[:2] != (height, width):
                        raise EpisodeError(f"{path}: /{key} frame {row} is {image.shape[1]}x{image.shape[0]}, "
                                           f"the camera's frames are {width}x{height}")
                    if blurrer is not None:
                        image, faces = blurrer.blur(image)
                        counters.faces_blurred += faces
                    cached = (row, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
                    blurred[name] = cached
                images[name] = cached[1]
            yield Frame(step.index, step.t_ns, (step.t_ns - first_t) / 1e9,
                        np.asarray(step.observation.get("state", np.zeros(0)), dtype=np.float32),
                        np.asarray(step.action, dtype=np.float32), images)
