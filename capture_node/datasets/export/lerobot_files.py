"""The files of a LeRobot v3.0 dataset as excap writes them: path templates and sizes, where the n-th data or video
file goes, meta/info.json, and the writer of the data files (`excap.datasets.export.lerobot` puts them together)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from excap.catalogue.index import EpisodeRecord
from excap.datasets.export.episode_part import PARQUET_OPTIONS, camera_key
from excap.datasets.frames import Layout
from excap.datasets.video import video_info

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
ROW_GROUP_ROWS = 65_536  # frames per parquet row group of the data files (at most; whole episodes)


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON at `path`, written under a temporary name and renamed (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def file_location(file_number: int) -> tuple[int, int]:
    """(chunk_index, file_index) of the n-th data or video file."""
    return divmod(file_number, CHUNKS_SIZE)


def info_json(out: Path, layout: Layout, records: list[EpisodeRecord], total_tasks: int, total_frames: int,
              fps: int) -> dict[str, Any]:
    """meta/info.json: the dataset's features (state, action, each camera's video as written), totals and templates."""
    features: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [len(layout.state_names)],
                              "names": list(layout.state_names)},
        "action": {"dtype": "float32", "shape": [len(layout.action_names)], "names": list(layout.action_names)},
    }
    for name, height, width in layout.cameras:
        key = camera_key(name)
        first = out / VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
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
        "fps": fps,
        "splits": {"train": f"0:{total}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if layout.cameras else None,
        "features": features,
    }


class DataFileWriter:
    """One data file, written under a temporary name and renamed when closed; row groups of whole episodes."""

    def __init__(self, out: Path, file_number: int) -> None:
        self.chunk, self.file = file_location(file_number)
        self.path = out / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.positions: list[int] = []
        self.buffered: list[pa.Table] = []
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, position: int, table: pa.Table) -> None:
        if self.buffered and self.rows + table.num_rows > ROW_GROUP_ROWS:
            self._flush()
        self.positions.append(position)
        self.buffered.append(table)
        self.rows += table.num_rows

    def full(self) -> bool:
        return self.tmp.exists() and self.tmp.stat().st_size >= DATA_FILES_SIZE_IN_MB * 1024 * 1024

    def _flush(self) -> None:
        table = pa.concat_tables(self.buffered)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema, **PARQUET_OPTIONS)
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.buffered, self.rows = [], 0

    def close(self) -> dict[str, Any]:
        if self.buffered:
            self._flush()
        assert self.writer is not None
        self.writer.close()
        os.replace(self.tmp, self.path)
        return {"chunk_index": self.chunk, "file_index": self.file, "positions": self.positions}
