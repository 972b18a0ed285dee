"""`excap export --format lerobot`: episodes as a LeRobot v3.0 dataset.

Layout written (as LeRobot's own code reads it):

```
OUT/meta/info.json                                  codebase_version v3.0, fps, features, path templates, totals
OUT/meta/tasks.parquet                              task strings (index) -> task_index
OUT/meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, data and video locations,
                                                    per-episode stats/<feature>/<stat>, excap/* provenance
OUT/meta/stats.json                                 dataset statistics per feature
OUT/meta/excap_export.json                          export report: counts only (no operator ids or names)
OUT/data/chunk-000/file-000.parquet                 one row per frame, episodes in order
OUT/videos/observation.images.<camera>/chunk-CCC/file-FFF.mp4   one file per episode (from_timestamp 0)
```

Frames are `EpisodeReader.steps` at `fps`: observation.state is the machine kind's state vector as decoded from CAN
(excap.schemas.machine_kinds: an excavator's boom, arm, bucket pitch, swing angle, engine speed; a wheel loader's
articulation, lift and bucket angles, pressures, ground speed, gear, payload, engine speed), action the
machine-function commands in force at the step,
timestamp the measured step time relative to the episode's first step (LeRobot looks video frames up at
from_timestamp + timestamp, frame k of each video being shown at k / fps). The offset of the first step from the
recording start is kept per episode in `excap/first_step_offset_s`.

Resuming: the export works in OUT/.excap-export/. `manifest.json` there records the plan (settings and the
SHA-256 of every source episode, in order) and each finished episode (its frame table in parts/, its videos
already at their final paths, its statistics). A rerun with the same plan skips finished episodes, redoes an
interrupted one from scratch, and then assembles the metadata and data tables from the parts. A different plan
in the same folder is refused; rerunning a finished export rewrites the same files. Tables are written with
fixed row order and fixed pyarrow options and contain no wall-clock values, so the same input gives
byte-identical parquet files.

Bad episodes: an episode that cannot be read as one (a camera without frames, an undecodable frame, any other
EpisodeError of the reader) or is of another machine setup than most of them (see frames.common_layout) is
skipped: it gets no episode index, `on_skip` hears about it, and it is listed in `meta/excap_export.json`
(`skipped_episodes`: episode id, file name and reason) and in the manifest, so a resumed export skips it again.
With `strict=True` the first such episode fails the export instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from excap.catalogue.index import EpisodeFilter, EpisodeRecord
from excap.core.errors import ConfigError, EpisodeError, ExcapError
from excap.datasets import stats as feature_stats
from excap.datasets.faces import FaceBlurrer
from excap.datasets.frames import FrameCounters, Layout, SkippedEpisode, common_layout, iter_frames, skipped_episode
from excap.datasets.selection import DEFAULT_PARTNER, ExportSelection, SelectedEpisode, episodes_to_export
from excap.datasets.video import VideoWriter, codec_available, default_codec, video_info

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
WORK_DIR = ".excap-export"
IMAGE_STATS_SAMPLES = 100  # frames per episode and camera sampled for image statistics
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "use_dictionary": True, "write_statistics": True,
                                   "version": "2.6", "data_page_version": "1.0"}


@dataclass
class LeRobotExportOptions:
    out: Path
    fps: int = 10
    partner: str = DEFAULT_PARTNER
    selection: EpisodeFilter | None = None
    blur_faces: bool = False
    vcodec: str | None = None  # default: libsvtav1 when PyAV's FFmpeg has it, else libx264
    registry: Path | None = None
    progress: bool = True
    strict: bool = False  # a bad episode fails the export instead of being skipped
    on_skip: Callable[[SkippedEpisode], None] | None = None  # told about each skipped episode as it happens
    catalog: str | None = None  # the catalogue to select from (excap.catalogue.store; default: the folder's own)


@dataclass
class ExportResult:
    out: Path
    episodes: int
    frames: int
    excluded: dict[str, int]
    resumed_episodes: int = 0
    faces_blurred: int = 0
    report: dict[str, Any] = field(default_factory=dict)
    skipped: list[SkippedEpisode] = field(default_factory=list)


def skip_handler(strict: bool, on_skip: Callable[[SkippedEpisode], None] | None) -> Callable[[SkippedEpisode], None]:
    """What an export does with a bad episode: fail (strict) or tell `on_skip` and go on."""
    def handle(skipped: SkippedEpisode) -> None:
        if strict:
            raise ExcapError(f"{skipped.file}: {skipped.reason} (--strict: no episode is skipped)")
        if on_skip is not None:
            on_skip(skipped)
    return handle


def camera_key(name: str) -> str:
    return f"observation.images.{name}"


def _atomic_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_parquet(table: pa.Table, path: Path) -> None:
    """A parquet file written atomically with fixed options (same table, same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    os.replace(tmp, path)


def _video_location(episode_index: int) -> tuple[int, int]:
    return divmod(episode_index, CHUNKS_SIZE)


class LeRobotExporter:
    def __init__(self, directory: Path, options: LeRobotExportOptions) -> None:
        self.directory = Path(directory)
        self.options = options
        self.out = Path(options.out)
        self.work = self.out / WORK_DIR
        self.codec = options.vcodec or default_codec()
        if not codec_available(self.codec):
            raise ConfigError(f"video codec {self.codec!r} is not available in PyAV's FFmpeg")
        if options.fps <= 0 or int(options.fps) != options.fps:
            raise ConfigError(f"--fps must be a positive whole number (LeRobot stores fps as int), not {options.fps}")

    def run(self) -> ExportResult:
        selection = episodes_to_export(self.directory, self.options.selection, self.options.partner,
                                       self.options.registry, self.options.catalog)
        skip = skip_handler(self.options.strict, self.options.on_skip)
        layout, unfit = common_layout([e.path for e in selection.episodes],
                                      [e.record.episode_id for e in selection.episodes], skip)
        plan = self._plan(selection, layout)
        manifest = self._open_manifest(plan)
        manifest.setdefault("skipped", {})
        blurrer = FaceBlurrer() if self.options.blur_faces else None
        resumed = 0
        episodes = list(enumerate(selection.episodes))
        bar = tqdm(episodes, desc="export lerobot", unit="episode", disable=not self.options.progress)
        for position, episode in bar:
            key = str(position)
            if key in manifest["skipped"]:
                continue
            if key in manifest["done"] and (self.work / "parts" / f"episode-{position:06d}.parquet").is_file():
                resumed += 1
                continue
            index = sum(1 for k in manifest["done"] if int(k) < position)  # exported episodes get 0, 1, 2, ...
            skipped = unfit.get(position)
            if skipped is None:
                try:
                    manifest["done"][key] = self._export_episode(index, position, episode, layout, blurrer)
                except EpisodeError as exc:
                    skipped = skipped_episode(episode.record.episode_id, episode.path, exc)
                    skip(skipped)
            if skipped is not None:
                manifest["skipped"][key] = skipped.as_json()
            _atomic_json(self.work / "manifest.json", manifest)
        if not manifest["done"]:
            raise ExcapError(f"{self.out}: every selected episode was skipped: "
                             + "; ".join(f"{v['file']}: {v['reason']}" for v in list(manifest["skipped"].values())[:3]))
        report = self._assemble(selection, layout, manifest)
        skipped_list = [SkippedEpisode(v["episode_id"], v["file"], v["reason"])
                        for _, v in sorted(manifest["skipped"].items(), key=lambda kv: int(kv[0]))]
        return ExportResult(self.out, len(manifest["done"]), report["exported_frames"], selection.excluded,
                            resumed, int(report["faces_blurred"]), report, skipped_list)

    # -- plan and manifest ---------------------------------------------------------------------------------
    def _plan(self, selection: ExportSelection, layout: Layout) -> dict[str, Any]:
        return {"format": "lerobot", "codebase_version": CODEBASE_VERSION, "fps": int(self.options.fps),
                "partner_hash": hashlib.sha256(selection.partner.encode()).hexdigest()[:16],
                "blur_faces": self.options.blur_faces, "vcodec": self.codec,
                "layout": {"cameras": [list(c) for c in layout.cameras], "state": list(layout.state_names),
                           "action": list(layout.action_names)},
                "sources": [e.record.sha256 for e in selection.episodes]}

    def _open_manifest(self, plan: dict[str, Any]) -> dict[str, Any]:
        path = self.work / "manifest.json"
        plan_id = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()
        if path.is_file():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if manifest.get("plan_id") != plan_id:
                raise ExcapError(f"{self.out}: holds an export with other settings or episodes; "
                                 "export into an empty folder (or remove this one)")
            return manifest
        if self.out.exists() and any(self.out.iterdir()):
            raise ExcapError(f"{self.out}: folder is not empty and holds no unfinished export")
        manifest = {"plan_id": plan_id, "plan": plan, "done": {}}
        _atomic_json(path, manifest)
        return manifest

    # -- one episode -----------------------------------------------------------------------------------------
    def _export_episode(self, index: int, position: int, episode: SelectedEpisode, layout: Layout,
                        blurrer: FaceBlurrer | None) -> dict[str, Any]:
        """Frames, videos and statistics of one episode as episode `index` (EpisodeError: it is skipped)."""
        chunk, file = _video_location(index)
        writers: dict[str, VideoWriter] = {}
        tmp_paths: dict[str, Path] = {}
        for name, height, width in layout.cameras:
            final = self.out / VIDEO_PATH.format(video_key=camera_key(name), chunk_index=chunk, file_index=file)
            tmp_paths[name] = final.with_name(final.stem + ".partial.mp4")
            writers[name] = VideoWriter(tmp_paths[name], width, height, int(self.options.fps), self.codec)
        counters = FrameCounters()
        timestamps: list[float] = []
        states: list[np.ndarray] = []
        actions: list[np.ndarray] = []
        samples: dict[str, list[np.ndarray]] = {name: [] for name in layout.camera_names}
        try:
            try:
                for frame in iter_frames(episode.path, self.options.fps, layout, blurrer, counters):
                    timestamps.append(frame.timestamp_s)
                    states.append(frame.state)
                    actions.append(frame.action)
                    for name, image in frame.images.items():
                        writers[name].write(image)
                        samples[name].append(image)
            finally:
                for writer in writers.values():
                    writer.close()
            if not timestamps:
                raise EpisodeError(f"{episode.path}: no aligned steps at {self.options.fps} Hz")
        except EpisodeError:
            for tmp in tmp_paths.values():
                tmp.unlink(missing_ok=True)
            raise
        length = len(timestamps)
        for tmp in tmp_paths.values():
            os.replace(tmp, tmp.with_name(tmp.name.replace(".partial", "")))
        table = pa.table({
            "observation.state": pa.array(list(np.stack(states)), type=pa.list_(pa.float32(), len(layout.state_names))),
            "action": pa.array(list(np.stack(actions)), type=pa.list_(pa.float32(), len(layout.action_names))),
            "timestamp": pa.array(np.asarray(timestamps, dtype=np.float32)),
            "frame_index": pa.array(np.arange(length, dtype=np.int64)),
        })
        write_parquet(table, self.work / "parts" / f"episode-{position:06d}.parquet")
        ep_stats = {"observation.state": feature_stats.vector_stats(np.stack(states)),
                    "action": feature_stats.vector_stats(np.stack(actions)),
                    "timestamp": feature_stats.vector_stats(np.asarray(timestamps, dtype=np.float32)),
                    "frame_index": feature_stats.vector_stats(np.arange(length))}
        for name, images in samples.items():
            step = max(1, len(images) // IMAGE_STATS_SAMPLES)
            ep_stats[camera_key(name)] = feature_stats.image_stats(np.stack(images[::step]))
        return {"index": index, "length": length, "faces_blurred": counters.faces_blurred,
                "first_step_offset_s": counters.first_step_offset_s,
                "stats": {k: feature_stats.to_json(v) for k, v in ep_stats.items()}}

    # -- dataset files ---------------------------------------------------------------------------------------
    def _assemble(self, selection: ExportSelection, layout: Layout, manifest: dict[str, Any]) -> dict[str, Any]:
        fps = int(self.options.fps)
        exported = [(int(k), selection.episodes[int(k)]) for k in sorted(manifest["done"], key=int)]
        tasks = sorted({e.record.task for _, e in exported})
        task_index = {task: i for i, task in enumerate(tasks)}
        parts = []
        rows: list[dict[str, Any]] = []
        all_stats: dict[str, list[dict[str, np.ndarray]]] = {}
        offset = 0
        for position, episode in exported:
            done = manifest["done"][str(position)]
            index = int(done["index"])
            part = pq.read_table(self.work / "parts" / f"episode-{position:06d}.parquet")
            length = part.num_rows
            part = part.append_column("episode_index", pa.array(np.full(length, index, dtype=np.int64)))
            part = part.append_column("index", pa.array(np.arange(offset, offset + length, dtype=np.int64)))
            part = part.append_column("task_index", pa.array(np.full(length, task_index[episode.record.task],
                                                                     dtype=np.int64)))
            parts.append(part)
            ep_stats = {k: feature_stats.from_json(v) for k, v in done["stats"].items()}
            for key, number in (("episode_index", index), ("task_index", task_index[episode.record.task])):
                ep_stats[key] = feature_stats.vector_stats(np.full(length, number))
            ep_stats["index"] = feature_stats.vector_stats(np.arange(offset, offset + length))
            for key, value in ep_stats.items():
                all_stats.setdefault(key, []).append(value)
            chunk, file = _video_location(index)
            last_timestamp = float(part.column("timestamp")[length - 1].as_py())
            row: dict[str, Any] = {
                "episode_index": index, "tasks": [episode.record.task], "length": length,
                "data/chunk_index": 0, "data/file_index": 0,
                "dataset_from_index": offset, "dataset_to_index": offset + length,
            }
            for name in layout.camera_names:
                key = camera_key(name)
                row[f"videos/{key}/chunk_index"] = chunk
                row[f"videos/{key}/file_index"] = file
                row[f"videos/{key}/from_timestamp"] = 0.0
                row[f"videos/{key}/to_timestamp"] = round(last_timestamp + 1.0 / fps, 6)
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            for key in sorted(ep_stats):
                for stat, stat_value in ep_stats[key].items():
                    row[f"stats/{key}/{stat}"] = np.asarray(stat_value).tolist()
            row["excap/episode_id"] = episode.record.episode_id
            row["excap/operator"] = episode.operator_pseudonym
            row["excap/outcome"] = episode.record.outcome
            row["excap/machine_model"] = episode.record.machine_model
            row["excap/first_step_offset_s"] = float(done["first_step_offset_s"])
            rows.append(row)
            offset += length

        data = pa.concat_tables(parts)
        write_parquet(data, self.out / DATA_PATH.format(chunk_index=0, file_index=0))
        write_parquet(pa.Table.from_pylist(rows), self.out / EPISODES_PATH)
        self._write_tasks(tasks)
        dataset_stats = {key: feature_stats.aggregate(values) for key, values in sorted(all_stats.items())}
        _atomic_json(self.out / "meta" / "stats.json",
                     {k: feature_stats.to_json(v) for k, v in dataset_stats.items()})
        info = self._info(layout, [e.record for _, e in exported], len(tasks), offset)
        _atomic_json(self.out / "meta" / "info.json", info)
        skipped = [v for _, v in sorted(manifest["skipped"].items(), key=lambda kv: int(kv[0]))]
        report = {**selection.report(), "exported_episodes": len(exported), "skipped_episodes": skipped,
                  "format": "lerobot", "codebase_version": CODEBASE_VERSION, "fps": fps,
                  "exported_frames": offset, "tasks": tasks, "blur_faces": self.options.blur_faces,
                  "faces_blurred": sum(int(d["faces_blurred"]) for d in manifest["done"].values()),
                  "vcodec": self.codec}
        report.pop("partner", None)
        _atomic_json(self.out / "meta" / "excap_export.json", report)
        manifest["complete"] = True
        _atomic_json(self.work / "manifest.json", manifest)
        return report

    def _write_tasks(self, tasks: list[str]) -> None:
        frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task"))
        table = pa.Table.from_pandas(frame, preserve_index=True)
        write_parquet(table, self.out / "meta" / "tasks.parquet")

    def _info(self, layout: Layout, records: list[EpisodeRecord], total_tasks: int,
              total_frames: int) -> dict[str, Any]:
        features: dict[str, Any] = {
            "observation.state": {"dtype": "float32", "shape": [len(layout.state_names)],
                                  "names": list(layout.state_names)},
            "action": {"dtype": "float32", "shape": [len(layout.action_names)], "names": list(layout.action_names)},
        }
        for name, height, width in layout.cameras:
            key = camera_key(name)
            first = self.out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
            features[key] = {"dtype": "video", "shape": [height, width, 3], "names": ["height", "width", "channels"],
                             "info": video_info(first)}
        for name in ("timestamp",):
            features[name] = {"dtype": "float32", "shape": [1], "names": None}
        for name in ("frame_index", "episode_index", "index", "task_index"):
            features[name] = {"dtype": "int64", "shape": [1], "names": None}
        kinds = sorted({r.machine_kind for r in records})
        models = sorted({r.machine_model for r in records})
        total = len(records)
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": models[0] if len(models) == 1 else "/".join(kinds),
            "total_episodes": total,
            "total_frames": total_frames,
            "total_tasks": total_tasks,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
            "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
            "fps": int(self.options.fps),
            "splits": {"train": f"0:{total}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if layout.cameras else None,
            "features": features,
        }


def export_lerobot(directory: str | Path, options: LeRobotExportOptions) -> ExportResult:
    return LeRobotExporter(Path(directory), options).run()
