"""A folder for fleet reports: the three recorded episodes (tests/support/recorded_folder.py), one of them with
an accepted phase annotation, and a file that is not an episode (`broken.h5`), which every report counts as
invalid."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from excap.episode.annotations import AnnotationSpan, store_annotation
from excap.episode.reader import EpisodeReader

ANNOTATED_PHASES_S = {"dig": 0.75, "swing_loaded": 0.5, "dump": 0.25}  # fractions 0.5, 0.3333, 0.1667


def annotate(episode: Path) -> None:
    with EpisodeReader(episode) as reader:
        start = reader.start_t_ns
    spans, at = [], start
    for label, seconds in ANNOTATED_PHASES_S.items():
        spans.append(AnnotationSpan(at, at + int(seconds * 1e9), label, "engineer"))
        at += int(seconds * 1e9)
    store_annotation(episode, spans, author="engineer-07", status="accepted")


@pytest.fixture(scope="session")
def fleet_folder(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fleet") / "station-a"
    shutil.copytree(recorded_dir, folder)
    annotate(sorted(folder.glob("*.h5"))[0])
    (folder / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 4000)
    return folder
