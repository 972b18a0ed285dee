"""`excap export --format robomimic`: episodes as one HDF5 file in robomimic's documented dataset layout.

```
data                      attrs total (frames in all demos), env_args (JSON: env_name, type, env_kwargs)
data/demo_N/obs/state     (n, S) float32: the state vector (names in data attrs excap_state_names)
data/demo_N/obs/<cam>_image  (n, H, W, 3) uint8 RGB, optionally resized; one chunk per frame, gzip-compressed
data/demo_N/next_obs/...  the same keys, shifted by one step: next_obs[t] = obs[t + 1]; the last step has no
                          successor, so its next_obs repeats its own obs (robomimic's loader reads next_obs by
                          default, and `dones` marks that last step); images there are HDF5 virtual datasets over
                          obs (HDF5 >= 1.10 reads them like any dataset; they take no space)
data/demo_N/states        (n, S) float32: the machine state vector (the same vector as obs/state and LeRobot's
                          observation.state, excap.schemas.machine_kinds); absent when the episode has no state
                          signals (robomimic needs `states` only to reset a simulator)
data/demo_N/actions       (n, A) float32: machine-function commands (names in excap_action_names)
data/demo_N/rewards       (n,) float64 zeros
data/demo_N/dones         (n,) int64, 1 at the last step
data/demo_N/timestamps    (n,) float64: step time relative to the episode's first step (an excap addition)
data/demo_N               attrs num_samples, excap_episode_id, excap_operator (per-partner pseudonym), excap_outcome
mask/train, mask/valid    demo names (bytes); the split is deterministic: demos are ranked by SHA-256 of their
                          episode id and the first ceil(valid_ratio * n) are the validation set, at least one and
                          at most n - 1 whenever there are two demos or more (one demo: all train)
/                         attr excap_export: the export report (JSON, counts only): marks the file as an export,
                          which the catalogue never takes for an episode
```

Frames are `EpisodeReader.steps` at `fps` (see excap.datasets.frames), written one at a time (an episode's
images are never all in memory). The file is written under a temporary name and renamed when complete, so an
interrupted export leaves no partial dataset behind.

An episode that cannot be read as one (a camera without frames, an undecodable frame, ...) or is of another
machine setup than most is skipped, as in the LeRobot export: `on_skip` hears about it and the `data` attribute
`excap_skipped_episodes` lists it (JSON: episode id, file name, reason); `strict=True` fails the export instead.
An episode found bad while its frames are written has its demo group removed (HDF5 does not reuse that space, so
the file can be larger than its content).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from excap.catalogue.index import EpisodeFilter
from excap.catalogue.not_episodes import EXPORT_ATTRIBUTE  # the root attribute holding the report marks an export
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.datasets.export.executors import MapParts, serial
from excap.datasets.export.fetched import Fetch, FetchedEpisodes, on_local_copy
from excap.datasets.export.lerobot import ExportResult, skip_handler
from excap.datasets.faces import FaceBlurrer
from excap.datasets.frames import (
    Frame,
    FrameCounters,
    Layout,
    SkippedEpisode,
    common_layout,
    episode_layout,
    iter_frames,
    skipped_episode,
)
from excap.datasets.selection import DEFAULT_PARTNER, ExportSelection, SelectedEpisode, episodes_to_export

DEFAULT_FILE = "robomimic.hdf5"
ENV_TYPE_GYM = 2  # robomimic's EnvType: excap demonstrations come from real machines, not a simulator
IMAGE_COMPRESSION = "gzip"  # readable by every HDF5 build (lzf is h5py's own filter)
IMAGE_COMPRESSION_LEVEL = 4


@dataclass
class RobomimicExportOptions:
    out: Path  # a .hdf5/.h5 file, or a folder that gets robomimic.hdf5
    fps: float = 10.0
    partner: str = DEFAULT_PARTNER
    selection: EpisodeFilter | None = None
    blur_faces: bool = False
    image_size: tuple[int, int] | None = None  # (width, height); None keeps the camera's size
    valid_ratio: float = 0.1
    registry: Path | None = None
    progress: bool = True
    strict: bool = False  # a bad episode fails the export instead of being skipped
    on_skip: Callable[[SkippedEpisode], None] | None = None
    catalog: str | None = None  # the catalogue to select from (excap.catalogue.store; default: the folder's own)
    map_parts: MapParts | None = None  # runs one task per episode (demo parts); None: every demo written here
    fetched: FetchedEpisodes | None = None  # episodes chosen elsewhere (an object store), copied by their tasks;
    # then the directory is not read and the demo parts run in this process unless `map_parts` is given


def output_file(out: Path) -> Path:
    return out if out.suffix in (".hdf5", ".h5") else out / DEFAULT_FILE


def split_demos(episode_ids: list[str], valid_ratio: float) -> tuple[list[int], list[int]]:
    """(train, valid) demo indices: a fixed function of the episode ids; with two demos or more, at least one of
    each."""
    count = len(episode_ids)
    n_valid = 0 if count < 2 else min(count - 1, max(1, math.ceil(valid_ratio * count)))
    ranked = sorted(range(count), key=lambda i: hashlib.sha256(episode_ids[i].encode()).hexdigest())
    valid = sorted(ranked[:n_valid])
    return [i for i in range(count) if i not in valid], valid


def _next(values: np.ndarray) -> np.ndarray:
    """The values of the following step: shifted by one, the last step repeated (it has no successor)."""
    return np.concatenate([values[1:], values[-1:]]) if len(values) else values


class DemoWriter:
    """One demo written frame by frame (an episode's images are never all in memory): obs/<camera>_image grows one
    compressed chunk per frame; low-dimensional values are kept until `finish` writes obs/state, next_obs, states,
    actions, rewards, dones and timestamps. Images in next_obs are virtual datasets over obs shifted by one (read
    like any dataset, no extra bytes)."""

    def __init__(self, demo: h5py.Group, image_size: tuple[int, int] | None) -> None:
        self.demo = demo
        self.image_size = image_size
        self.obs = demo.create_group("obs")
        self.images: dict[str, h5py.Dataset] = {}
        self.states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.timestamps: list[float] = []

    @property
    def count(self) -> int:
        return len(self.timestamps)

    def append(self, frame: Frame) -> None:
        for camera, image in frame.images.items():
            image = _resize(image, self.image_size)
            images = self.images.get(camera)
            if images is None:
                images = self.images[camera] = self.obs.create_dataset(
                    f"{camera}_image", shape=(0, *image.shape), maxshape=(None, *image.shape), dtype=np.uint8,
                    chunks=(1, *image.shape), compression=IMAGE_COMPRESSION, compression_opts=IMAGE_COMPRESSION_LEVEL)
            images.resize(self.count + 1, axis=0)
            images[self.count] = image
        self.states.append(frame.state)
        self.actions.append(frame.action)
        self.timestamps.append(frame.timestamp_s)

    def finish(self, has_state: bool, next_images: bool = True) -> None:
        """The demo's other datasets; `next_images=False` leaves next_obs' images to `link_next_images` (a demo
        part, copied into the export file at assembly: a virtual dataset names its source by path)."""
        count = self.count
        state = np.stack(self.states).astype(np.float32)
        self.obs.create_dataset("state", data=state)
        following = self.demo.create_group("next_obs")
        following.create_dataset("state", data=_next(state))
        if next_images:
            link_next_images(self.demo, list(self.images))
        if has_state:
            self.demo.create_dataset("states", data=state)
        self.demo.create_dataset("actions", data=np.stack(self.actions).astype(np.float32))
        self.demo.create_dataset("rewards", data=np.zeros(count, dtype=np.float64))
        dones = np.zeros(count, dtype=np.int64)
        dones[-1] = 1
        self.demo.create_dataset("dones", data=dones)
        self.demo.create_dataset("timestamps", data=np.array(self.timestamps, dtype=np.float64))
        self.demo.attrs["num_samples"] = count


def link_next_images(demo: h5py.Group, cameras: list[str]) -> None:
    """next_obs/<camera>_image of `demo`: virtual datasets over obs/<camera>_image shifted by one step."""
    following = demo["next_obs"]
    for camera in cameras:
        images = demo["obs"][f"{camera}_image"]
        count = images.shape[0]
        source = h5py.VirtualSource(".", images.name, shape=images.shape)  # ".": this same file, wherever it is
        layout = h5py.VirtualLayout(shape=images.shape, dtype=images.dtype)
        if count > 1:
            layout[:count - 1] = source[1:count]
        layout[count - 1] = source[count - 1]
        following.create_virtual_dataset(f"{camera}_image", layout)


@dataclass(frozen=True)
class DemoTask:
    """One episode of a robomimic export on the engine: written as the group `demo` of a small HDF5 file
    `parts/demo-PPPPPP.hdf5` (PPPPPP: its position in the selection), copied into the export file at assembly."""

    source: Path
    position: int
    episode_id: str
    fps: float
    layout: Layout
    parts: Path
    image_size: tuple[int, int] | None = None
    blur_faces: bool = False
    fetch: Fetch | None = None  # the episode lives elsewhere: exported from a local copy (see EpisodeTask)


@dataclass
class DemoPart:
    position: int
    count: int = 0
    faces_blurred: int = 0
    skipped: SkippedEpisode | None = None


def demo_part_path(parts: Path, position: int) -> Path:
    return parts / f"demo-{position:06d}.hdf5"


def export_demo_part(task: DemoTask) -> DemoPart:
    """Write one episode's demo part; an episode that cannot be read as one (or fetched) is returned as skipped."""
    if task.fetch is not None:
        return on_local_copy(task, export_demo_part, lambda skipped: DemoPart(task.position, skipped=skipped))
    path = demo_part_path(task.parts, task.position)
    tmp = path.with_name(path.name + ".partial")
    counters = FrameCounters()
    blurrer = FaceBlurrer() if task.blur_faces else None
    try:
        with h5py.File(tmp, "w") as handle:
            writer = DemoWriter(handle.create_group("demo"), task.image_size)
            for frame in iter_frames(task.source, task.fps, task.layout, blurrer, counters):
                writer.append(frame)
            if not writer.count:
                raise EpisodeError(f"{task.source}: no aligned steps at {task.fps} Hz")
            writer.finish(has_state=bool(task.layout.state_names), next_images=False)
    except EpisodeError as exc:
        tmp.unlink(missing_ok=True)
        return DemoPart(task.position, skipped=skipped_episode(task.episode_id, task.source, exc))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return DemoPart(task.position, writer.count, counters.faces_blurred)


def _resize(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None or (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


class RobomimicExporter:
    def __init__(self, directory: Path, options: RobomimicExportOptions) -> None:
        self.directory = Path(directory)
        self.options = options
        if options.fps <= 0:
            raise ConfigError(f"--fps must be positive, not {options.fps}")
        if not 0 < options.valid_ratio < 1:
            raise ConfigError(f"--valid-ratio must be between 0 and 1 (exclusive), not {options.valid_ratio}")
        self.skip = skip_handler(options.strict, options.on_skip)
        self.skipped: list[SkippedEpisode] = []
        self.unfit: set[int] = set()  # positions in the selection skipped before writing
        self.map_parts = options.map_parts or (serial if options.fetched is not None else None)

    def run(self) -> ExportResult:
        fetched = self.options.fetched
        selection = fetched.selection if fetched is not None else episodes_to_export(
            self.directory, self.options.selection, self.options.partner, self.options.registry, self.options.catalog)
        layout, unfit = common_layout([e.path for e in selection.episodes],
                                      [e.record.episode_id for e in selection.episodes], self.skip,
                                      layout_of=fetched.layout_of if fetched is not None else episode_layout)
        self.unfit = set(unfit)
        self.skipped = list(unfit.values())
        target = output_file(Path(self.options.out))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        blurrer = FaceBlurrer() if self.options.blur_faces else None
        counters = FrameCounters()
        try:
            with h5py.File(tmp, "w", track_order=True) as handle:
                total, exported = self._write(handle, selection, layout, blurrer, counters)
                report = {**selection.report(), "exported_episodes": exported,
                          "skipped_episodes": [s.as_json() for s in self.skipped], "format": "robomimic",
                          "exported_frames": total, "faces_blurred": counters.faces_blurred,
                          "valid_ratio": self.options.valid_ratio}
                report.pop("partner", None)
                handle.attrs[EXPORT_ATTRIBUTE] = json.dumps(report, sort_keys=True)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            shutil.rmtree(self._parts_folder(), ignore_errors=True)
        os.replace(tmp, target)
        return ExportResult(target, exported, total, selection.excluded, 0, counters.faces_blurred, report,
                            list(self.skipped))

    def _write_demo(self, demo: h5py.Group, episode: SelectedEpisode, layout: Layout,
                    blurrer: FaceBlurrer | None, counters: FrameCounters) -> int:
        """The episode's frames into `demo`, one frame at a time; its sample count. EpisodeError: it is skipped."""
        writer = DemoWriter(demo, self.options.image_size)
        for frame in iter_frames(episode.path, self.options.fps, layout, blurrer, counters):
            writer.append(frame)
        if not writer.count:
            raise EpisodeError(f"{episode.path}: no aligned steps at {self.options.fps} Hz")
        writer.finish(has_state=bool(layout.state_names))
        demo.attrs["excap_episode_id"] = episode.record.episode_id
        demo.attrs["excap_operator"] = episode.operator_pseudonym
        demo.attrs["excap_outcome"] = episode.record.outcome
        demo.attrs["excap_task"] = episode.record.task
        return writer.count

    def _parts_folder(self) -> Path:
        target = output_file(Path(self.options.out))
        return target.with_name(f".{target.name}.parts")

    def _parts(self, selection: ExportSelection, layout: Layout) -> dict[int, DemoPart]:
        """Every episode's demo part, made by the tasks of `map_parts` (in any order, on any engine)."""
        folder = self._parts_folder()
        folder.mkdir(parents=True, exist_ok=True)
        fetched = self.options.fetched
        tasks = [DemoTask(episode.path, position, episode.record.episode_id, self.options.fps, layout, folder,
                          self.options.image_size, self.options.blur_faces,
                          fetched.fetch_of(episode) if fetched is not None else None)
                 for position, episode in enumerate(selection.episodes) if position not in self.unfit]
        assert self.map_parts is not None
        return {part.position: part for part in self.map_parts(export_demo_part, tasks)}

    def _copy_demo(self, data: h5py.Group, name: str, part: DemoPart, episode: SelectedEpisode, layout: Layout,
                   counters: FrameCounters) -> int:
        """A demo part copied into `data/name` (next_obs' images linked again, in this file)."""
        if part.skipped is not None:
            raise EpisodeError(part.skipped.reason)
        with h5py.File(demo_part_path(self._parts_folder(), part.position), "r") as source:
            source.copy(source["demo"], data, name)
        demo = data[name]
        link_next_images(demo, list(layout.camera_names))
        demo.attrs["excap_episode_id"] = episode.record.episode_id
        demo.attrs["excap_operator"] = episode.operator_pseudonym
        demo.attrs["excap_outcome"] = episode.record.outcome
        demo.attrs["excap_task"] = episode.record.task
        counters.faces_blurred += part.faces_blurred
        return part.count

    def _write(self, handle: h5py.File, selection: ExportSelection, layout: Layout, blurrer: FaceBlurrer | None,
               counters: FrameCounters) -> tuple[int, int]:
        data = handle.create_group("data", track_order=True)
        total = 0
        names: list[str] = []
        exported: list[SelectedEpisode] = []
        bar = tqdm(selection.episodes, desc="export robomimic", unit="episode", disable=not self.options.progress)
        parts = self._parts(selection, layout) if self.map_parts is not None else None
        for position, episode in enumerate(bar):
            if position in self.unfit:
                continue
            name = f"demo_{len(names)}"
            try:
                if parts is None:
                    count = self._write_demo(data.create_group(name), episode, layout, blurrer, counters)
                else:
                    count = self._copy_demo(data, name, parts[position], episode, layout, counters)
            except EpisodeError as exc:
                if name in data:
                    del data[name]
                skipped = skipped_episode(episode.record.episode_id, episode.path, exc)
                self.skip(skipped)
                self.skipped.append(skipped)
                continue
            names.append(name)
            exported.append(episode)
            total += count
        if not names:
            raise ExcapError("every selected episode was skipped: "
                             + "; ".join(s.line() for s in self.skipped[:3]))
        data.attrs["total"] = total
        data.attrs["excap_skipped_episodes"] = json.dumps([s.as_json() for s in self.skipped])
        models = sorted({e.record.machine_model for e in exported})
        data.attrs["env_args"] = json.dumps({
            "env_name": f"excap_{'+'.join(models)}", "type": ENV_TYPE_GYM,
            "env_kwargs": {"fps": self.options.fps, "cameras": layout.camera_names,
                           "state_names": list(layout.state_names), "action_names": list(layout.action_names)},
        }, sort_keys=True)
        data.attrs["excap_state_names"] = json.dumps(list(layout.state_names))
        data.attrs["excap_action_names"] = json.dumps(list(layout.action_names))
        train, valid = split_demos([e.record.episode_id for e in exported], self.options.valid_ratio)
        mask = handle.create_group("mask")
        mask.create_dataset("train", data=np.array([names[i] for i in train], dtype="S"))
        mask.create_dataset("valid", data=np.array([names[i] for i in valid], dtype="S"))
        return total, len(exported)


def export_robomimic(directory: str | Path, options: RobomimicExportOptions) -> ExportResult:
    return RobomimicExporter(Path(directory), options).run()
