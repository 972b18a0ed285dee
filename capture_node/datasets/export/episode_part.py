"""One episode of a LeRobot export as a pure, picklable unit of work: `export_episode_part(EpisodeTask)`.

A part is everything of one episode that does not depend on the others: its frame table (observation.state,
action, timestamp, frame_index) in `parts/episode-PPPPPP.parquet` and one video per camera in
`parts/episode-PPPPPP/<video key>.mp4` (PPPPPP: the episode's position in the export's plan), plus the numbers
the assembly needs (length, statistics). Episode indices, task indices and global frame indices are given at
assembly (excap.datasets.export.lerobot), so parts can be made in any order, by any number of processes (or
Ray tasks), and the result is the same.

Frames are streamed, never held: the step alignment is computed for the whole episode with numpy
(excap.datasets.alignment); each camera runs on its own thread, reading its JPEG frames, decoding each source
frame once (OpenCV, outside the GIL) and handing it to its encoder (PyAV, outside the GIL). Image statistics are
kept as histograms of up to IMAGE_STATS_SAMPLES evenly spaced frames per camera, so memory does not grow with the
episode's length.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from excap.core.errors import EpisodeError
from excap.datasets import stats as feature_stats
from excap.datasets.alignment import align
from excap.datasets.export.fetched import Fetch, on_local_copy
from excap.datasets.frames import Layout, SkippedEpisode, skipped_episode
from excap.episode.jpeg_frames import FrameError, decode_jpeg
from excap.episode.reader import CameraStream, EpisodeReader

PAUSE_ENV = "EXCAP_EXPORT_PAUSE_FOLDER"  # tests only: a folder where each task writes `started-POSITION-PID`
# and then waits until the file `go` exists there (so a test can kill the worker running a task); unset normally
PAUSE_TIMEOUT_S = 300.0
IMAGE_STATS_SAMPLES = 100  # frames per episode and camera sampled for image statistics
READ_BLOCK = 64  # steps whose JPEG frames a camera thread reads from the file at once
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": True, "write_statistics": True,
                                   "version": "2.6", "data_page_version": "1.0"}


def camera_key(name: str) -> str:
    return f"observation.images.{name}"


def part_table_path(parts: Path, position: int) -> Path:
    return parts / f"episode-{position:06d}.parquet"


def part_video_path(parts: Path, position: int, camera: str) -> Path:
    return parts / f"episode-{position:06d}" / f"{camera_key(camera)}.mp4"


def write_parquet(table: pa.Table, path: Path) -> None:
    """A parquet file written atomically with fixed options (same table, same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    os.replace(tmp, path)


@dataclass(frozen=True)
class EpisodeTask:
    """What one part needs: the source file, its position in the plan, the settings and the parts folder."""

    source: Path
    position: int
    episode_id: str
    fps: int
    layout: Layout
    codec: str
    parts: Path  # OUT/.excap-export/parts
    blur_faces: bool = False
    codec_threads: int = 0  # per encoder; 0: FFmpeg's choice
    pause_folder: str = ""  # tests only (PAUSE_ENV): announce the worker's pid here, wait for `go`
    fetch: Fetch | None = None  # the episode lives elsewhere (an object store): `source` is its path there and
    # the task exports a local copy made by `fetch` (excap.datasets.export.fetched), removed afterwards


@dataclass
class EpisodePart:
    """The result of one task: either a finished part or the reason the episode is skipped."""

    position: int
    length: int = 0
    last_timestamp_s: float = 0.0
    first_step_offset_s: float = 0.0
    faces_blurred: int = 0
    stats: dict[str, Any] = field(default_factory=dict)  # feature -> stat -> JSON value
    skipped: SkippedEpisode | None = None
    seconds: float = 0.0  # wall time the part took
    stage_seconds: dict[str, float] = field(default_factory=dict)  # where it went: wall seconds per stage, the
    # camera stages (read, decode, encode, statistics) summed over the cameras' threads

    def as_json(self) -> dict[str, Any]:
        """The manifest's record of a finished part (its times are for benchmarks: no dataset file has them)."""
        return {"length": self.length, "last_timestamp_s": self.last_timestamp_s,
                "first_step_offset_s": self.first_step_offset_s, "faces_blurred": self.faces_blurred,
                "stats": self.stats, "seconds": round(self.seconds, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()}}


def export_episode_part(task: EpisodeTask) -> EpisodePart:
    """Write the part of one episode; an episode that cannot be read as one is returned as skipped (its partial
    files removed); so is one that cannot be fetched. Other errors (e.g. a codec that cannot encode the frame
    size) are raised."""
    if task.fetch is not None:
        return on_local_copy(task, export_episode_part,
                             lambda skipped: EpisodePart(task.position, skipped=skipped))
    if task.pause_folder:
        _pause(Path(task.pause_folder), task.position)
    started = time.monotonic()
    try:
        part = _export(task)
    except EpisodeError as exc:
        for camera in task.layout.camera_names:
            part_video_path(task.parts, task.position, camera).with_suffix(".partial.mp4").unlink(missing_ok=True)
        return EpisodePart(task.position, skipped=skipped_episode(task.episode_id, task.source, exc),
                           seconds=time.monotonic() - started)
    part.seconds = time.monotonic() - started
    return part


def _pause(folder: Path, position: int) -> None:
    """Announce this worker's pid for the task at `position`, then wait until `folder/go` exists."""
    (folder / f"started-{position}-{os.getpid()}").touch()
    deadline = time.monotonic() + PAUSE_TIMEOUT_S
    while not (folder / "go").exists():
        if time.monotonic() > deadline:
            raise EpisodeError(f"{folder / 'go'}: not created within {PAUSE_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


@dataclass
class _CameraResult:
    stats: feature_stats.ImageStatsAccumulator
    faces: int
    stage_seconds: dict[str, float]


def _export(task: EpisodeTask) -> EpisodePart:
    started = time.perf_counter()
    with EpisodeReader(task.source) as reader:
        alignment, streams = align(reader, task.fps, task.layout)
        aligned = time.perf_counter()
        length = len(alignment)
        if not length:
            raise EpisodeError(f"{task.source}: no aligned steps at {task.fps} Hz")
        sample_every = max(1, length // IMAGE_STATS_SAMPLES)
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=max(1, len(streams)), thread_name_prefix="camera") as threads:
            futures = {name: threads.submit(_encode_camera, task, name, height, width, streams[name],
                                            alignment.camera_rows[name], sample_every, stop)
                       for name, height, width in task.layout.cameras}
            try:
                cameras = {name: future.result() for name, future in futures.items()}
            except BaseException:
                stop.set()
                raise
    cameras_done = time.perf_counter()
    for name in task.layout.camera_names:
        partial = part_video_path(task.parts, task.position, name).with_suffix(".partial.mp4")
        os.replace(partial, part_video_path(task.parts, task.position, name))
    timestamps = alignment.timestamps
    table = pa.table({
        "observation.state": _vectors(alignment.state),
        "action": _vectors(alignment.action),
        "timestamp": pa.array(timestamps),
        "frame_index": pa.array(np.arange(length, dtype=np.int64)),
    })
    write_parquet(table, part_table_path(task.parts, task.position))
    ep_stats = {"observation.state": feature_stats.vector_stats(alignment.state),
                "action": feature_stats.vector_stats(alignment.action),
                "timestamp": feature_stats.vector_stats(timestamps),
                "frame_index": feature_stats.vector_stats(np.arange(length))}
    for name, result in cameras.items():
        ep_stats[camera_key(name)] = result.stats.stats()
    stages = {"open_and_align": aligned - started, "cameras_wall": cameras_done - aligned,
              "table_and_stats": time.perf_counter() - cameras_done}
    for result in cameras.values():
        for stage, seconds in result.stage_seconds.items():
            stages[f"camera_{stage}"] = stages.get(f"camera_{stage}", 0.0) + seconds
    return EpisodePart(task.position, length, float(timestamps[-1]), alignment.first_step_offset_s,
                       sum(r.faces for r in cameras.values()),
                       {k: feature_stats.to_json(v) for k, v in ep_stats.items()}, stage_seconds=stages)


def _vectors(values: np.ndarray) -> pa.Array:
    """(N, D) float32 as a column of fixed-size lists (LeRobot's vector features)."""
    if values.shape[1] == 0:
        return pa.array([[] for _ in range(len(values))], type=pa.list_(pa.float32(), 0))
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=pa.float32()), values.shape[1])


def _frame_reader(stream: CameraStream, rows: np.ndarray) -> Callable[[int], list[bytes]]:
    """The JPEG frames of steps [begin, begin + READ_BLOCK): one read of the rows they span when they are dense,
    else one read per row (e.g. a 30 fps camera exported at 1 fps)."""
    def read(begin: int) -> list[bytes]:
        block = rows[begin:begin + READ_BLOCK]
        low, high = int(block[0]), int(block[-1]) + 1
        if high - low <= 2 * len(block):
            frames = stream.block("frames", low, high)
            return [np.asarray(frames[int(row) - low], dtype=np.uint8).tobytes() for row in block]
        return [stream.jpeg(int(row)) for row in block]
    return read


def _encode_camera(task: EpisodeTask, name: str, height: int, width: int, stream: CameraStream, rows: np.ndarray,
                   sample_every: int, stop: threading.Event) -> _CameraResult:
    from excap.datasets.faces import FaceBlurrer
    from excap.datasets.video import VideoWriter

    blurrer = FaceBlurrer() if task.blur_faces else None
    accumulator = feature_stats.ImageStatsAccumulator()
    faces = 0
    path = part_video_path(task.parts, task.position, name).with_suffix(".partial.mp4")
    read = _frame_reader(stream, rows)
    image: np.ndarray | None = None
    shown = -1
    clock = time.perf_counter
    spent = dict.fromkeys(("read", "decode", "encode", "statistics"), 0.0)
    with VideoWriter(path, width, height, task.fps, task.codec, threads=task.codec_threads) as writer:
        for begin in range(0, len(rows), READ_BLOCK):
            if stop.is_set():
                break
            t0 = clock()
            jpegs = read(begin)
            spent["read"] += clock() - t0
            for offset, jpeg in enumerate(jpegs):
                step = begin + offset
                row = int(rows[step])
                t0 = clock()
                if image is None or row != shown:
                    try:
                        image = decode_jpeg(jpeg)
                    except FrameError as exc:
                        raise EpisodeError(f"{task.source}: /{stream.path} frame {row}: {exc}") from exc
                    if image.shape[:2] != (height, width):
                        raise EpisodeError(f"{task.source}: /cameras/{name} frame {row} is {image.shape[1]}x"
                                           f"{image.shape[0]}, the camera's frames are {width}x{height}")
                    if blurrer is not None:
                        image, found = blurrer.blur(image)
                        faces += found
                    shown = row
                t1 = clock()
                writer.write_bgr(image)
                t2 = clock()
                spent["decode"] += t1 - t0
                spent["encode"] += t2 - t1
                if step % sample_every == 0:
                    accumulator.add(image, (2, 1, 0))
                    spent["statistics"] += clock() - t2
        t0 = clock()
    spent["encode"] += clock() - t0  # the encoder's flush
    return _CameraResult(accumulator, faces, spent)
