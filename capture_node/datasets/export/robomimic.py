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

Frames are `EpisodeReader.steps` at `fps` (see excap.datasets.frames). The file is written under a
temporary name and renamed when complete, so an interrupted export leaves no partial dataset behind.

An episode that cannot be read as one (a camera without frames, an undecodable frame, ...) or is of another
machine setup than most is skipped, as in the LeRobot export: `on_skip` hears about it and the `data` attribute
`excap_skipped_episodes` lists it (JSON: episode id, file name, reason); `strict=True` fails the export instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
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
from excap.datasets.export.lerobot import ExportResult, skip_handler
from excap.datasets.faces import FaceBlurrer
from excap.datasets.frames import (
    Frame,
    FrameCounters,
    Layout,
    SkippedEpisode,
    common_layout,
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


def _write_observations(demo: h5py.Group, observations: dict[str, np.ndarray]) -> None:
    """obs/<key> and next_obs/<key>. Images are stored once, one chunk per frame, compressed; their next_obs is a
    virtual dataset over the same frames shifted by one (read like any dataset, no extra bytes)."""
    obs, following = demo.create_group("obs"), demo.create_group("next_obs")
    for key, values in observations.items():
        if values.ndim != 4:
            obs.create_dataset(key, data=values)
            following.create_dataset(key, data=_next(values))
            continue
        images = obs.create_dataset(key, data=values, chunks=(1, *values.shape[1:]), compression=IMAGE_COMPRESSION,
                                    compression_opts=IMAGE_COMPRESSION_LEVEL)
        count = len(values)
        source = h5py.VirtualSource(".", images.name, shape=values.shape)  # ".": this same file, wherever it is
        layout = h5py.VirtualLayout(shape=values.shape, dtype=values.dtype)
        layout[:count - 1] = source[1:count]
        layout[count - 1] = source[count - 1]
        following.create_virtual_dataset(key, layout)


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

    def run(self) -> ExportResult:
        selection = episodes_to_export(self.directory, self.options.selection, self.options.partner,
                                       self.options.registry, self.options.catalog)
        layout, unfit = common_layout([e.path for e in selection.episodes],
                                      [e.record.episode_id for e in selection.episodes], self.skip)
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
        os.replace(tmp, target)
        return ExportResult(target, exported, total, selection.excluded, 0, counters.faces_blurred, report,
                            list(self.skipped))

    def _frames(self, position: int, episode: SelectedEpisode, layout: Layout, blurrer: FaceBlurrer | None,
                counters: FrameCounters) -> list[Frame] | None:
        """The episode's frames, or None when it is skipped (see the module docstring)."""
        if position in self.unfit:
            return None
        try:
            frames = list(iter_frames(episode.path, self.options.fps, layout, blurrer, counters))
            if not frames:
                raise EpisodeError(f"{episode.path}: no aligned steps at {self.options.fps} Hz")
        except EpisodeError as exc:
            skipped = skipped_episode(episode.record.episode_id, episode.path, exc)
            self.skip(skipped)
            self.skipped.append(skipped)
            return None
        return frames

    def _observations(self, frames: list[Frame], layout: Layout) -> dict[str, np.ndarray]:
        """obs key -> (n, ...) array: the state vector and each camera's images."""
        observations = {"state": np.stack([f.state for f in frames]).astype(np.float32)}
        for camera in layout.camera_names:
            observations[f"{camera}_image"] = np.stack([_resize(f.images[camera], self.options.image_size)
                                                        for f in frames])
        return observations

    def _write(self, handle: h5py.File, selection: ExportSelection, layout: Layout, blurrer: FaceBlurrer | None,
               counters: FrameCounters) -> tuple[int, int]:
        data = handle.create_group("data", track_order=True)
        total = 0
        names: list[str] = []
        exported: list[SelectedEpisode] = []
        bar = tqdm(selection.episodes, desc="export robomimic", unit="episode", disable=not self.options.progress)
        for position, episode in enumerate(bar):
            frames = self._frames(position, episode, layout, blurrer, counters)
            if frames is None:
                continue
            name = f"demo_{len(names)}"
            names.append(name)
            exported.append(episode)
            demo = data.create_group(name)
            observations = self._observations(frames, layout)
            _write_observations(demo, observations)
            if layout.state_names:
                demo.create_dataset("states", data=observations["state"])
            count = len(frames)
            demo.create_dataset("actions", data=np.stack([f.action for f in frames]))
            demo.create_dataset("rewards", data=np.zeros(count, dtype=np.float64))
            dones = np.zeros(count, dtype=np.int64)
            dones[-1] = 1
            demo.create_dataset("dones", data=dones)
            demo.create_dataset("timestamps", data=np.array([f.timestamp_s for f in frames], dtype=np.float64))
            demo.attrs["num_samples"] = count
            demo.attrs["excap_episode_id"] = episode.record.episode_id
            demo.attrs["excap_operator"] = episode.operator_pseudonym
            demo.attrs["excap_outcome"] = episode.record.outcome
            demo.attrs["excap_task"] = episode.record.task
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
