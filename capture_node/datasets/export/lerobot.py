"""`excap export --format lerobot`: episodes as a LeRobot v3.0 dataset.

Layout written (as LeRobot's own code reads it):

```
OUT/meta/info.json                                  codebase_version v3.0, fps, features, path templates, totals
OUT/meta/tasks.parquet                              task strings (index) -> task_index
OUT/meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, data and video locations,
                                                    per-episode stats/<feature>/<stat>, excap/* provenance
OUT/meta/stats.json                                 dataset statistics per feature
OUT/meta/excap_export.json                          export report: counts only (no operator ids or names)
OUT/data/chunk-CCC/file-FFF.parquet                 one row per frame, episodes in order; a file holds whole
                                                    episodes, a new one starts past DATA_FILES_SIZE_IN_MB and
                                                    with each --append
OUT/videos/observation.images.<camera>/chunk-CCC/file-FFF.mp4   one file per episode (from_timestamp 0)
```

Frames are `EpisodeReader.steps` at `fps`: observation.state is the machine kind's state vector as decoded from CAN
(excap.schemas.machine_kinds: an excavator's boom, arm, bucket pitch, swing angle, engine speed; a wheel loader's
articulation, lift and bucket angles, pressures, ground speed, gear, payload, engine speed), action the
machine-function commands in force at the step,
timestamp the measured step time relative to the episode's first step (LeRobot looks video frames up at
from_timestamp + timestamp, frame k of each video being shown at k / fps). The offset of the first step from the
recording start is kept per episode in `excap/first_step_offset_s`. Task indices follow the order in which the
tasks first appear in the exported episodes.

How it runs: each episode is one task, `export_episode_part` (excap.datasets.export.episode_part), which streams
its frames and writes the episode's frame table and videos into OUT/.excap-export/parts/; `workers` local
processes (or any `map_parts` executor, excap.datasets.export.executors) run the tasks. The assembly then gives
the finished episodes their indices in plan order, moves their videos into place and writes data/ and meta/.
The result does not depend on the number of workers.

Resuming: `manifest.json` in OUT/.excap-export/ records the plan (settings and the SHA-256 of every source
episode, in order), each finished part (its statistics and length) and the data files written. A rerun with the
same plan skips finished episodes, redoes an interrupted one from scratch, and then assembles. A different plan
in the same folder is refused; rerunning a finished export leaves data/ and videos/ as they are and rewrites
meta/ with the same bytes. Tables are written with fixed
row order and fixed pyarrow options and contain no wall-clock values, so the same input gives byte-identical
parquet files.

Appending (`append=True`, `excap export --append`): OUT holds an export made with the same settings (fps, codec,
partner, face blurring, machine setup); the selected episodes it does not hold yet are added after the ones it
has. Their frames go to new data files and their videos to new video files; the files already there are not
rewritten, only meta/ is. Every episode already exported must still be selected (a withdrawn consent or changed
filters mean a fresh export). The result equals a full export of the same episodes in the same order (old ones
first): the same frame rows in the same order across data/ (read in file order), the same videos, meta/info.json,
meta/stats.json, meta/tasks.parquet and meta/excap_export.json; meta/episodes differs only in the
`data/chunk_index` and `data/file_index` columns, because the appended rows start a new data file.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from excap.catalogue.index import EpisodeFilter
from excap.core.errors import ConfigError, ExcapError
from excap.datasets import stats as feature_stats
from excap.datasets.export.episode_part import (
    PAUSE_ENV,
    EpisodePart,
    EpisodeTask,
    camera_key,
    export_episode_part,
    part_table_path,
    part_video_path,
    write_parquet,
)
from excap.datasets.export.executors import MapParts, process_pool
from excap.datasets.export.fetched import FetchedEpisodes
from excap.datasets.export.lerobot_files import (
    CODEBASE_VERSION,
    EPISODES_PATH,
    VIDEO_PATH,
    DataFileWriter,
    file_location,
    info_json,
    write_json,
)
from excap.datasets.frames import Layout, SkippedEpisode, common_layout, episode_layout
from excap.datasets.selection import DEFAULT_PARTNER, ExportSelection, SelectedEpisode, episodes_to_export
from excap.datasets.video import codec_available, default_codec

__all__ = ["ExportResult", "LeRobotExportOptions", "LeRobotExporter", "camera_key", "export_lerobot",
           "skip_handler", "write_parquet"]

WORK_DIR = ".excap-export"


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
    workers: int = 1  # local processes making episode parts
    append: bool = False  # add the selected episodes OUT does not hold yet to the export there
    map_parts: MapParts | None = None  # runs the episode tasks (default: process_pool(workers))
    codec_threads: int = 0  # threads per video encoder (0: the machine's cores over the cameras)
    fetched: FetchedEpisodes | None = None  # episodes chosen elsewhere (an object store), each copied by its
    # task on the worker that runs it (excap.datasets.export.fetched); then the directory is not read


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
    appended_episodes: int = 0


def skip_handler(strict: bool, on_skip: Callable[[SkippedEpisode], None] | None) -> Callable[[SkippedEpisode], None]:
    """What an export does with a bad episode: fail (strict) or tell `on_skip` and go on."""
    def handle(skipped: SkippedEpisode) -> None:
        if strict:
            raise ExcapError(f"{skipped.file}: {skipped.reason} (--strict: no episode is skipped)")
        if on_skip is not None:
            on_skip(skipped)
    return handle


def _plan_id(plan: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def codec_threads(cameras: int) -> int:
    """Threads per encoder: the machine's cores shared among the cameras of an episode. It does not depend on the
    number of workers, so that any number of workers writes the same video files (encoders' output can depend
    on their thread count)."""
    return max(1, (os.cpu_count() or 1) // max(1, cameras))


class LeRobotExporter:
    def __init__(self, directory: Path, options: LeRobotExportOptions) -> None:
        self.directory = Path(directory)
        self.options = options
        self.out = Path(options.out)
        self.work = self.out / WORK_DIR
        self.parts = self.work / "parts"
        self.codec = options.vcodec or default_codec()
        if not codec_available(self.codec):
            raise ConfigError(f"video codec {self.codec!r} is not available in PyAV's FFmpeg")
        if options.fps <= 0 or int(options.fps) != options.fps:
            raise ConfigError(f"--fps must be a positive whole number (LeRobot stores fps as int), not {options.fps}")
        if options.workers < 1:
            raise ConfigError(f"--workers must be at least 1, not {options.workers}")

    def run(self) -> ExportResult:
        fetched = self.options.fetched
        selection = fetched.selection if fetched is not None else episodes_to_export(
            self.directory, self.options.selection, self.options.partner, self.options.registry, self.options.catalog)
        skip = skip_handler(self.options.strict, self.options.on_skip)
        manifest, episodes, layout, appended = self._open(selection, skip)
        for key, done in list(manifest["done"].items()):  # a part whose table is missing is made again, and
            # one recorded by an excap without episode parts (no last timestamp)
            if ("index" not in done and not part_table_path(self.parts, int(key)).is_file()) \
                    or "last_timestamp_s" not in done:
                del manifest["done"][key]
        resumed = len(manifest["done"])
        pending = [p for p in range(len(episodes)) if str(p) not in manifest["done"]
                   and str(p) not in manifest["skipped"]]
        self._make_parts(episodes, layout, pending, manifest, skip)
        if not manifest["done"]:
            raise ExcapError(f"{self.out}: every selected episode was skipped: "
                             + "; ".join(f"{v['file']}: {v['reason']}" for v in list(manifest["skipped"].values())[:3]))
        report = self._assemble(selection, episodes, layout, manifest)
        skipped_list = [SkippedEpisode(v["episode_id"], v["file"], v["reason"])
                        for _, v in sorted(manifest["skipped"].items(), key=lambda kv: int(kv[0]))]
        return ExportResult(self.out, len(manifest["done"]), report["exported_frames"], selection.excluded,
                            resumed, int(report["faces_blurred"]), report, skipped_list, appended)

    # -- plan and manifest ---------------------------------------------------------------------------------
    def _settings(self, selection: ExportSelection, layout: Layout) -> dict[str, Any]:
        return {"format": "lerobot", "codebase_version": CODEBASE_VERSION, "fps": int(self.options.fps),
                "partner_hash": hashlib.sha256(selection.partner.encode()).hexdigest()[:16],
                "blur_faces": self.options.blur_faces, "vcodec": self.codec,
                "layout": {"cameras": [list(c) for c in layout.cameras], "state": list(layout.state_names),
                           "action": list(layout.action_names)}}

    def _open(self, selection: ExportSelection, skip: Callable[[SkippedEpisode], None]
              ) -> tuple[dict[str, Any], list[SelectedEpisode], Layout, int]:
        """The manifest, the episodes in plan order, their layout and how many episodes this run appends."""
        path = self.work / "manifest.json"
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if manifest is None and self.out.exists() and any(self.out.iterdir()):
            raise ExcapError(f"{self.out}: folder is not empty and holds no unfinished export")
        if manifest is not None and self.options.append:
            return self._open_append(manifest, selection, skip)
        paths = [e.path for e in selection.episodes]
        layout, unfit = common_layout(paths, [e.record.episode_id for e in selection.episodes], skip,
                                      layout_of=self._layout_of)
        plan = {**self._settings(selection, layout), "sources": [e.record.sha256 for e in selection.episodes]}
        if manifest is not None:
            if manifest.get("plan_id") != _plan_id(plan):
                raise ExcapError(f"{self.out}: holds an export with other settings or episodes; export into an "
                                 "empty folder (or remove this one), or add episodes to it with --append")
        else:
            manifest = {"plan_id": _plan_id(plan), "plan": plan, "done": {}}
        manifest.setdefault("skipped", {})
        manifest.setdefault("data_files", [])
        for position, skipped in unfit.items():
            manifest["skipped"].setdefault(str(position), skipped.as_json())
        write_json(path, manifest)
        return manifest, list(selection.episodes), layout, 0

    def _open_append(self, manifest: dict[str, Any], selection: ExportSelection,
                     skip: Callable[[SkippedEpisode], None]) -> tuple[dict[str, Any], list[SelectedEpisode], Layout,
                                                                       int]:
        plan = manifest["plan"]
        saved = plan["layout"]
        layout = Layout(tuple((str(n), int(h), int(w)) for n, h, w in saved["cameras"]), tuple(saved["state"]),
                        tuple(saved["action"]))
        settings = self._settings(selection, layout)
        if any(plan.get(key) != value for key, value in settings.items()):
            differing = sorted(key for key, value in settings.items() if plan.get(key) != value)
            raise ExcapError(f"{self.out}: holds an export with other settings ({', '.join(differing)}); "
                             "--append adds episodes to an export made with the same settings")
        by_source: dict[str, list[SelectedEpisode]] = {}
        for episode in selection.episodes:
            by_source.setdefault(episode.record.sha256, []).append(episode)
        kept: list[SelectedEpisode] = []
        for number, sha in enumerate(plan["sources"]):
            if not by_source.get(sha):
                raise ExcapError(f"{self.out}: episode {number} of this export (SHA-256 {sha[:16]}...) is not "
                                 "selected any more (changed filters, withdrawn consent, a changed or removed "
                                 "file); export into an empty folder instead of appending")
            kept.append(by_source[sha].pop(0))
        chosen = {id(e) for e in kept}
        added = [e for e in selection.episodes if id(e) not in chosen]
        _, unfit = common_layout([e.path for e in added], [e.record.episode_id for e in added], skip, chosen=layout,
                                 layout_of=self._layout_of)
        for offset, skipped in unfit.items():
            manifest["skipped"][str(len(kept) + offset)] = skipped.as_json()
        episodes = kept + added
        plan = {**settings, "sources": [e.record.sha256 for e in episodes]}
        manifest.update({"plan_id": _plan_id(plan), "plan": plan, "complete": False})
        manifest.setdefault("data_files", [])
        write_json(self.work / "manifest.json", manifest)
        return manifest, episodes, layout, len(added)

    @property
    def _layout_of(self) -> Callable[[Path], Layout]:
        return self.options.fetched.layout_of if self.options.fetched is not None else episode_layout

    # -- episode parts -----------------------------------------------------------------------------------------
    def _make_parts(self, episodes: list[SelectedEpisode], layout: Layout, pending: list[int],
                    manifest: dict[str, Any], skip: Callable[[SkippedEpisode], None]) -> None:
        threads = self.options.codec_threads or codec_threads(len(layout.cameras))
        tasks = [EpisodeTask(episodes[p].path, p, episodes[p].record.episode_id, int(self.options.fps), layout,
                             self.codec, self.parts, self.options.blur_faces, threads,
                             os.environ.get(PAUSE_ENV, ""),
                             self.options.fetched.fetch_of(episodes[p]) if self.options.fetched else None)
                 for p in pending]
        map_parts = self.options.map_parts or process_pool(self.options.workers)
        results: Iterator[EpisodePart] = map_parts(export_episode_part, tasks)
        bar = tqdm(results, total=len(tasks), desc="export lerobot", unit="episode",
                   disable=not self.options.progress)
        try:
            for part in bar:
                key = str(part.position)
                if part.skipped is not None:
                    skip(part.skipped)
                    manifest["skipped"][key] = part.skipped.as_json()
                else:
                    manifest["done"][key] = part.as_json()
                write_json(self.work / "manifest.json", manifest)
        finally:
            bar.close()

    # -- dataset files ---------------------------------------------------------------------------------------
    def _assemble(self, selection: ExportSelection, episodes: list[SelectedEpisode], layout: Layout,
                  manifest: dict[str, Any]) -> dict[str, Any]:
        fps = int(self.options.fps)
        positions = sorted(int(k) for k in manifest["done"])
        tasks: list[str] = []
        for position in positions:
            if episodes[position].record.task not in tasks:
                tasks.append(episodes[position].record.task)
        task_index = {task: i for i, task in enumerate(tasks)}
        self._place_videos(positions, layout, manifest)
        written = {p for entry in manifest["data_files"] for p in entry["positions"]}
        self._write_data(episodes, [p for p in positions if p not in written], positions, task_index, manifest)
        data_file = {p: (entry["chunk_index"], entry["file_index"])
                     for entry in manifest["data_files"] for p in entry["positions"]}
        rows: list[dict[str, Any]] = []
        all_stats: dict[str, list[dict[str, np.ndarray]]] = {}
        offset = 0
        for index, position in enumerate(positions):
            episode = episodes[position]
            done = manifest["done"][str(position)]
            length = int(done["length"])
            ep_stats = {k: feature_stats.from_json(v) for k, v in done["stats"].items()}
            for key, number in (("episode_index", index), ("task_index", task_index[episode.record.task])):
                ep_stats[key] = feature_stats.vector_stats(np.full(length, number))
            ep_stats["index"] = feature_stats.vector_stats(np.arange(offset, offset + length))
            for key, value in ep_stats.items():
                all_stats.setdefault(key, []).append(value)
            chunk, file = file_location(index)
            data_chunk, data_index = data_file[position]
            row: dict[str, Any] = {
                "episode_index": index, "tasks": [episode.record.task], "length": length,
                "data/chunk_index": data_chunk, "data/file_index": data_index,
                "dataset_from_index": offset, "dataset_to_index": offset + length,
            }
            for name in layout.camera_names:
                key = camera_key(name)
                row[f"videos/{key}/chunk_index"] = chunk
                row[f"videos/{key}/file_index"] = file
                row[f"videos/{key}/from_timestamp"] = 0.0
                row[f"videos/{key}/to_timestamp"] = round(float(done["last_timestamp_s"]) + 1.0 / fps, 6)
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

        write_parquet(pa.Table.from_pylist(rows), self.out / EPISODES_PATH)
        self._write_tasks(tasks)
        dataset_stats = {key: feature_stats.aggregate(values) for key, values in sorted(all_stats.items())}
        write_json(self.out / "meta" / "stats.json",
                     {k: feature_stats.to_json(v) for k, v in dataset_stats.items()})
        info = info_json(self.out, layout, [episodes[p].record for p in positions], len(tasks), offset,
                         int(self.options.fps))
        write_json(self.out / "meta" / "info.json", info)
        skipped = [v for _, v in sorted(manifest["skipped"].items(), key=lambda kv: int(kv[0]))]
        report = {**selection.report(), "exported_episodes": len(positions), "skipped_episodes": skipped,
                  "format": "lerobot", "codebase_version": CODEBASE_VERSION, "fps": fps,
                  "exported_frames": offset, "tasks": tasks, "blur_faces": self.options.blur_faces,
                  "faces_blurred": sum(int(d["faces_blurred"]) for d in manifest["done"].values()),
                  "vcodec": self.codec}
        report.pop("partner", None)
        write_json(self.out / "meta" / "excap_export.json", report)
        manifest["complete"] = True
        write_json(self.work / "manifest.json", manifest)
        return report

    def _place_videos(self, positions: list[int], layout: Layout, manifest: dict[str, Any]) -> None:
        """Each finished part's videos moved to their final paths by episode index (a rename, once)."""
        for index, position in enumerate(positions):
            done = manifest["done"][str(position)]
            if done.get("index") == index:
                continue
            chunk, file = file_location(index)
            for name in layout.camera_names:
                final = self.out / VIDEO_PATH.format(video_key=camera_key(name), chunk_index=chunk, file_index=file)
                final.parent.mkdir(parents=True, exist_ok=True)
                source = part_video_path(self.parts, position, name)
                if source.is_file() or not final.is_file():  # else: moved by a run that stopped before saying so
                    os.replace(source, final)
            done["index"] = index
        write_json(self.work / "manifest.json", manifest)

    def _write_data(self, episodes: list[SelectedEpisode], new: list[int], positions: list[int],
                    task_index: dict[str, int], manifest: dict[str, Any]) -> None:
        """The frame rows of episodes not in a data file yet, in new data files (whole episodes per file, a new
        file past DATA_FILES_SIZE_IN_MB), streamed part by part in row groups of at most ROW_GROUP_ROWS."""
        if not new:
            return
        offsets = dict(zip(positions, np.cumsum([0] + [int(manifest["done"][str(p)]["length"])
                                                       for p in positions])[:-1].tolist(), strict=True))
        indices = {p: i for i, p in enumerate(positions)}
        file_number = len(manifest["data_files"])
        writer: DataFileWriter | None = None
        for position in new:
            if writer is not None and writer.full():
                manifest["data_files"].append(writer.close())
                file_number += 1
                writer = None
            if writer is None:
                writer = DataFileWriter(self.out, file_number)
            part = pq.read_table(part_table_path(self.parts, position))
            length = part.num_rows
            offset = int(offsets[position])
            part = part.append_column("episode_index", pa.array(np.full(length, indices[position], dtype=np.int64)))
            part = part.append_column("index", pa.array(np.arange(offset, offset + length, dtype=np.int64)))
            part = part.append_column("task_index", pa.array(np.full(
                length, task_index[episodes[position].record.task], dtype=np.int64)))
            writer.add(position, part)
        if writer is not None:
            manifest["data_files"].append(writer.close())
        write_json(self.work / "manifest.json", manifest)

    def _write_tasks(self, tasks: list[str]) -> None:
        frame = pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)}, index=pd.Index(tasks, name="task"))
        table = pa.Table.from_pandas(frame, preserve_index=True)
        write_parquet(table, self.out / "meta" / "tasks.parquet")

def export_lerobot(directory: str | Path, options: LeRobotExportOptions) -> ExportResult:
    return LeRobotExporter(Path(directory), options).run()
