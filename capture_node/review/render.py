"""Review videos of episodes: camera views side by side above a panel of sticks, commands, signals, events.

Output frames fall at t0 + k / fps, from the latest first frame among the chosen cameras to the
latest last frame, at the first camera's rate unless `fps` is given. Each output frame shows, for
every stream, its latest sample at or before the frame time (the same rule as
`EpisodeReader.steps`), so a view freezes rather than jumps ahead when a camera drops frames.

The work is bounded by the samples, not by the timestamps: stretches longer than `MAX_HOLD_S` without any
camera frame (or /control row, without cameras) are left out of the video and reported, and a video has at
most `MAX_FRAMES` frames. Views take their size from the frames themselves (the camera attributes only
describe them), and are scaled down so the video is at most `MAX_VIDEO_WIDTH` pixels wide.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
from tqdm import tqdm

from excap.core.errors import EpisodeError
from excap.episode.reader import CameraStream, EpisodeReader, Event, opened
from excap.review.kinds import review_signals
from excap.review.panel import (
    EVENT_SHOW_NS,
    HEADER_HEIGHT,
    HIGHLIGHT_KINDS,
    PANEL_HEIGHT,
    PanelState,
    draw_header,
    draw_panel,
    format_signal,
)

MIN_WIDTH = 1152  # the panel needs this much; narrower camera rows are scaled up (at most MAX_UPSCALE) or centred
MAX_UPSCALE = 2.0
MAX_VIDEO_WIDTH = 3840  # wider camera rows are scaled down
MIN_VIEW_HEIGHT = 16
DEFAULT_FPS = 10.0  # without cameras
MAX_DERIVED_FPS = 120.0  # a rate taken from the episode (nominal or measured) is clamped to this
MAX_HOLD_S = 2.0  # a view holds its last frame this long; longer stretches without samples are left out
MAX_FRAMES = 1_000_000  # frames of one review video (about 9 h at 30 fps)
TITLE_CHARS = 80
TIMELINE_STEPS = 2000  # event marks on the progress bar are merged to this resolution
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


@dataclass(frozen=True)
class ReviewLayout:
    cameras: tuple[str, ...]  # stream paths, left to right
    view_height: int
    view_widths: tuple[int, ...]
    width: int
    height: int


def _even(value: float) -> int:
    return max(2, round(value / 2.0) * 2)


def _camera_size(camera: CameraStream) -> tuple[int, int]:
    """(width, height) of the camera's first frame as decoded (attributes may disagree with the frames)."""
    height, width = camera.image(0).shape[:2]
    return width, height


def review_layout(reader: EpisodeReader, cameras: Sequence[str] | None = None) -> ReviewLayout:
    """Where everything goes: views scaled to a common height, header above, panel below."""
    paths = reader.paths("camera") if cameras is None else [reader.camera(c).path for c in cameras]
    paths = [p for p in paths if len(reader.stream(p))]
    if not paths:
        return ReviewLayout((), 0, (), MIN_WIDTH, _even(HEADER_HEIGHT + PANEL_HEIGHT))
    sizes = [_camera_size(reader.camera(p)) for p in paths]
    height = float(sizes[0][1])
    natural = sum(w * height / h for w, h in sizes)
    if natural < MIN_WIDTH:
        height *= min(MAX_UPSCALE, MIN_WIDTH / natural)
    elif natural > MAX_VIDEO_WIDTH:
        height *= MAX_VIDEO_WIDTH / natural
    if height < MIN_VIEW_HEIGHT:
        raise EpisodeError(f"{reader.path}: {len(paths)} camera views do not fit a {MAX_VIDEO_WIDTH}-pixel wide "
                           "review video; choose some with --cameras")
    view_height = _even(height)
    widths = tuple(_even(w * view_height / h) for w, h in sizes)
    width = _even(max(sum(widths), MIN_WIDTH))
    return ReviewLayout(tuple(paths), view_height, widths, width, _even(HEADER_HEIGHT + view_height + PANEL_HEIGHT))


def _camera_fps(camera: CameraStream) -> float:
    nominal = camera.nominal_fps
    if nominal <= 0 and len(camera) > 1:
        period = float(np.median(np.subtract(camera.t_ns[1:], camera.t_ns[:-1], dtype=np.float64)))
        nominal = 1e9 / period if period > 0 else 0.0
    return min(nominal, MAX_DERIVED_FPS) if nominal > 0 else DEFAULT_FPS


@dataclass(frozen=True)
class ReviewTiming:
    times: np.ndarray  # output frame times (t_ns)
    rate: float  # frames per second
    skipped_s: float = 0.0  # time left out: stretches longer than MAX_HOLD_S without samples
    capped: bool = False  # the video stops after MAX_FRAMES frames


def covered_spans(sample_t_ns: np.ndarray, hold_ns: int) -> list[tuple[int, int]]:
    """[start, end] spans within `hold_ns` after some sample, merged (samples sorted or not)."""
    times = np.unique(np.asarray(sample_t_ns, dtype=np.int64))
    if not times.size:
        return []
    breaks = np.flatnonzero(np.subtract(times[1:], times[:-1], dtype=np.float64) > hold_ns)
    starts = np.concatenate([times[:1], times[breaks + 1]])
    ends = np.concatenate([times[breaks], times[-1:]])
    return [(int(a), int(b) + hold_ns) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def review_timing(reader: EpisodeReader, fps: float | None = None, cameras: Sequence[str] | None = None,
                  max_frames: int = MAX_FRAMES) -> ReviewTiming:
    """Output frame times of a review video: the grid begin + k / rate, where samples are (see the module)."""
    layout = review_layout(reader, cameras)
    streams = [reader.camera(p) for p in layout.cameras]
    if streams:
        rate = fps or _camera_fps(streams[0])
        begin = max(int(s.t_ns[0]) for s in streams)
        end = max(int(s.t_ns[-1]) for s in streams)
        samples = np.concatenate([s.t_ns for s in streams])
    else:
        control = reader.stream("control")
        if not len(control):
            raise EpisodeError(f"{reader.path}: no camera frames and no control rows to review")
        rate = fps or DEFAULT_FPS
        begin, end = int(control.t_ns[0]), int(control.t_ns[-1])
        samples = control.t_ns
    period_ns = 1e9 / rate
    hold_ns = max(round(MAX_HOLD_S * 1e9), math.ceil(2 * period_ns))
    pieces, count, skipped_ns, capped, covered_until = [], 0, 0.0, False, begin
    for start, stop in covered_spans(samples[samples >= begin], hold_ns):
        stop = min(stop, end)
        if stop < start:
            continue
        skipped_ns += max(0, start - covered_until)
        covered_until = stop
        first = math.ceil((start - begin) / period_ns - 1e-9)
        last = math.floor((stop - begin) / period_ns + 1e-9)
        if last - first + 1 > max_frames - count:
            last, capped = first + (max_frames - count) - 1, True
        if last >= first:  # begin + k * period for k in first..last, in int64 without overflow near its limits
            origin = begin + round(first * period_ns)
            pieces.append(origin + np.round(np.arange(last - first + 1) * period_ns).astype(np.int64))
            count += last - first + 1
        if capped:
            break
    times = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return ReviewTiming(times[times <= end], rate, skipped_ns / 1e9, capped)


def review_frame_times(reader: EpisodeReader, fps: float | None = None,
                       cameras: Sequence[str] | None = None) -> tuple[np.ndarray, float]:
    """Output frame times (t_ns) and the frame rate of a review video."""
    timing = review_timing(reader, fps, cameras)
    return timing.times, timing.rate


class PanelSource:
    """Looks up what the panel shows at a time: latest joystick, control and signal samples, events."""

    def __init__(self, reader: EpisodeReader) -> None:
        self.reader = reader
        self.start = reader.start_t_ns
        self.duration_s = float(reader.metadata.get("duration_s", 0.0))
        self.control = reader.stream("control") if "control" in {s.path for s in reader.streams} else None
        self.command_names = self.control.names("commands") if self.control else []
        joysticks = reader.paths("joystick")
        self.joystick = reader.stream(joysticks[0]) if joysticks else None
        self.axis_names = self.joystick.names("axes") if self.joystick else []
        kind = str(reader.metadata.get("machine_kind", ""))
        self.signals = [(signal.label, signal.unit, *reader.signal(signal.name))
                        for signal in review_signals(kind) if reader.has_signal(signal.name)]
        self.events = reader.events()
        order = sorted(range(len(self.events)), key=lambda n: (self.events[n].t_ns, n))
        self._by_time = [self.events[n] for n in order]  # the latest event at a time: bisect, not a scan
        self._times = [e.t_ns for e in self._by_time]
        duration_ns = max(1.0, self.duration_s * 1e9)
        marks = {(round(min(max((e.t_ns - self.start) / duration_ns, 0.0), 1.0) * TIMELINE_STEPS),
                  e.kind in HIGHLIGHT_KINDS) for e in self.events}  # one mark per pixel-sized step
        self.timeline = [(step / TIMELINE_STEPS, strong) for step, strong in sorted(marks)]

    def visible_event(self, t_ns: int) -> tuple[Event | None, float]:
        """As review_panel.visible_event: the latest event at or before t_ns if younger than EVENT_SHOW_NS."""
        position = bisect.bisect_right(self._times, t_ns) - 1
        if position < 0 or t_ns - self._times[position] > EVENT_SHOW_NS:
            return None, 0.0
        return self._by_time[position], (t_ns - self._times[position]) / 1e9

    def state(self, t_ns: int) -> PanelState:
        axes: dict[str, float] = {}
        if self.joystick is not None and (i := self.joystick.index_at(t_ns)) >= 0:
            values = self.joystick.column("axes")[i]
            names = self.axis_names or [f"axis{k}" for k in range(len(values))]
            axes = {name: float(v) for name, v in zip(names, values, strict=False)}
        commands = [(name, 0.0) for name in self.command_names]
        enabled = None
        if self.control is not None and (i := self.control.index_at(t_ns)) >= 0:
            commands = [(n, float(v)) for n, v in zip(self.command_names, self.control.column("commands")[i],
                                                       strict=False)]
            if "enabled" in self.control.info.columns:
                enabled = bool(self.control.column("enabled")[i])
        signals = []
        for label, unit, stream, column in self.signals:
            i = stream.index_at(t_ns)
            value = float(stream.column(column)[i]) if i >= 0 else float("nan")
            signals.append((label, format_signal(value, stream.unit(column) or unit)))
        event, age = self.visible_event(t_ns)
        return PanelState((t_ns - self.start) / 1e9, self.duration_s, axes, commands, enabled, signals, event, age,
                          self.timeline)


def _label(canvas: np.ndarray, text: str, left: int, bottom: int) -> None:
    """Camera name in a dark box at the bottom left of its view."""
    (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    cv2.rectangle(canvas, (left, bottom - height - 12), (left + width + 12, bottom), (24, 24, 24), -1)
    cv2.putText(canvas, text, (left + 6, bottom - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (235, 235, 235), 1,
                cv2.LINE_AA)


class FrameWriter(Protocol):
    """Where the review frames go: BGR uint8 frames in order, then `close()`."""

    codec: str

    def write(self, bgr: np.ndarray) -> None: ...
    def close(self) -> None: ...


WriterFactory = Callable[[Path, float, int, int], FrameWriter]  # (out, fps, width, height)


class OpenCvWriter:
    """OpenCV's own encoders: MPEG-4 Part 2 (`mp4v`) for .mp4 / .mov, Motion JPEG for .avi / .mkv. Browsers do not
    play mp4v: `excap render` uses H.264 (`excap.datasets.h264`) where PyAV is installed."""

    def __init__(self, out: Path, fps: float, width: int, height: int) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        self.codec = FOURCC.get(out.suffix.lower(), "mp4v")
        self._writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*self.codec), float(fps), (width, height))
        if not self._writer.isOpened():
            raise EpisodeError(f"{out}: cannot write a {self.codec} video here (OpenCV without a suitable video "
                               "backend)")

    def write(self, bgr: np.ndarray) -> None:
        self._writer.write(bgr)

    def close(self) -> None:
        self._writer.release()


def render_review_video(episode: str | Path | EpisodeReader, out: Path, fps: float | None = None,
                        cameras: Sequence[str] | None = None, progress: bool = True,
                        note: Callable[[str], None] | None = None, writer: WriterFactory = OpenCvWriter,
                        frame_filter: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """Write a review video of `episode` to `out` with `writer` (default OpenCV: .mp4 mp4v, .avi MJPG); returns the
    number of frames. `frame_filter` (e.g. face blurring) gets every camera frame (BGR) once, before it is scaled.

    `note` receives a line when time without samples is left out or the video is cut at MAX_FRAMES."""
    out = Path(out)
    with opened(episode) as reader:
        layout = review_layout(reader, cameras)
        timing = review_timing(reader, fps, cameras)
        times, rate = timing.times, timing.rate
        if note is not None and timing.skipped_s > 0:
            note(f"{reader.path.name}: left out {timing.skipped_s:.6g} s without samples (stretches over "
                 f"{MAX_HOLD_S:g} s)")
        if note is not None and timing.capped:
            note(f"{reader.path.name}: the video stops after {MAX_FRAMES} frames")
        streams = [reader.camera(p) for p in layout.cameras]
        indices = [s.indices_at(times) for s in streams]
        overlay = PanelSource(reader)
        title = f"{reader.metadata.get('episode_id', reader.path.stem)}  {reader.metadata.get('control_pattern', '')}"
        title = title[:TITLE_CHARS]
        canvas = np.zeros((layout.height, layout.width, 3), dtype=np.uint8)
        views_top, panel_top = HEADER_HEIGHT, HEADER_HEIGHT + layout.view_height
        views_left = (layout.width - sum(layout.view_widths)) // 2
        cache: list[tuple[int, np.ndarray] | None] = [None] * len(streams)
        frames = writer(out, rate, layout.width, layout.height)
        try:
            for k, t in enumerate(tqdm(times.tolist(), desc=f"review {reader.path.name}", unit="frame",
                                       file=sys.stderr, disable=not progress)):
                canvas[:] = 0
                x = views_left
                for c, stream in enumerate(streams):
                    i = int(indices[c][k])
                    entry = cache[c]
                    if entry is None or entry[0] != i:
                        source = stream.image(i) if frame_filter is None else frame_filter(stream.image(i))
                        image = cv2.resize(source, (layout.view_widths[c], layout.view_height),
                                           interpolation=cv2.INTER_LINEAR)
                        entry = cache[c] = (i, image)
                    canvas[views_top:panel_top, x:x + layout.view_widths[c]] = entry[1]
                    _label(canvas, stream.path.split("/", 1)[1], x, panel_top)
                    x += layout.view_widths[c]
                state = overlay.state(t)
                draw_header(canvas, state, title)
                draw_panel(canvas[panel_top:panel_top + PANEL_HEIGHT], state)
                frames.write(canvas)
        finally:
            frames.close()
    return len(times)
