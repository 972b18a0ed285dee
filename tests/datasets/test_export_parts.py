"""LeRobot exports made of episode parts: the same dataset for any number of workers, appending equal to a full
export, frames streamed (memory does not grow with the episode), bad episodes skipped with workers too."""

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.catalogue.index import EpisodeFilter
from excap.cli.datasets import main
from excap.core.errors import ExcapError
from excap.datasets import stats as feature_stats
from excap.datasets.alignment import align
from excap.datasets.export import lerobot as module
from excap.datasets.export.episode_part import EpisodeTask, export_episode_part, part_table_path
from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
from excap.datasets.frames import episode_layout
from excap.episode.reader import EpisodeReader
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.hostile_episodes import operator_of, unexportable_copies

CODEC = "libx264"  # fast; the byte-level checks hold for any codec


def options(out: Path, **kwargs: object) -> LeRobotExportOptions:
    return LeRobotExportOptions(out=out, fps=10, partner="oem-test", progress=False, vcodec=CODEC, **kwargs)


def dataset_files(out: Path) -> dict[str, bytes]:
    """Every file of the dataset (the work folder left out)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and module.WORK_DIR not in p.parts}


def data_rows(out: Path) -> pa.Table:
    """All frame rows, data files read in path order."""
    return pa.concat_tables([pq.read_table(p) for p in sorted((out / "data").rglob("*.parquet"))])


@pytest.fixture(scope="module")
def serial_export(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial") / "dataset"
    assert export_lerobot(recorded_dir, options(out)).episodes == 2
    return out


def test_any_number_of_workers_gives_the_same_dataset(serial_export: Path, recorded_dir: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "two-workers"
    result = export_lerobot(recorded_dir, options(out, workers=2))
    assert result.episodes == 2
    files = dataset_files(out)
    assert files == dataset_files(serial_export)
    assert sum(name.endswith(".mp4") for name in files) == 2


def test_the_cli_runs_workers(serial_export: Path, recorded_dir: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main(["export", str(recorded_dir), "--format", "lerobot", "--out", str(out), "--partner", "oem-test",
                 "--vcodec", CODEC, "--workers", "2", "--no-progress"]) == 0
    assert "2 episodes" in capsys.readouterr().out
    assert dataset_files(out) == dataset_files(serial_export)
    with pytest.raises(SystemExit) as refused:
        main(["export", str(recorded_dir), "--format", "lerobot", "--out", str(tmp_path / "x"),
              "--workers", "0", "--no-progress"])
    assert refused.value.code == 2
    assert "--workers: must be positive, not 0" in capsys.readouterr().err
    assert main(["export", str(recorded_dir), "--format", "robomimic", "--out", str(tmp_path / "r.hdf5"),
                 "--append", "--no-progress"]) == 2
    assert "--append applies to --format lerobot only" in capsys.readouterr().err


def test_append_keeps_old_files_and_equals_a_full_export(serial_export: Path, recorded_dir: Path,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "appended"
    first = export_lerobot(recorded_dir, options(out, selection=EpisodeFilter(task="dig-and-load")))
    assert first.episodes == 1
    old = {p: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
           for p in [*(out / "data").rglob("*.parquet"), *(out / "videos").rglob("*.mp4")]}
    assert len(old) == 2
    added = export_lerobot(recorded_dir, options(out, append=True))
    assert (added.episodes, added.appended_episodes) == (2, 1)
    for path, (inode, mtime, content) in old.items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns, path.read_bytes()) == (inode, mtime, content)

    # equal to the full export: same rows in the same order, same videos and metadata; the appended episode's
    # rows are in a new data file, so meta/episodes differs only in its data file location
    assert data_rows(out).equals(data_rows(serial_export))
    assert len(list((out / "data").rglob("*.parquet"))) == 2
    appended_files, full_files = dataset_files(out), dataset_files(serial_export)
    for name, content in full_files.items():
        if name.startswith(("videos/", "meta/")) and name != module.EPISODES_PATH:
            assert appended_files[name] == content, name
    episodes = pq.read_table(out / module.EPISODES_PATH).to_pylist()
    full = pq.read_table(serial_export / module.EPISODES_PATH).to_pylist()
    assert [e["data/file_index"] for e in episodes] == [0, 1] and [e["data/file_index"] for e in full] == [0, 0]
    for row in (*episodes, *full):
        del row["data/file_index"]
    assert episodes == full

    again = export_lerobot(recorded_dir, options(out, append=True))  # nothing new: nothing rewritten
    assert (again.episodes, again.appended_episodes) == (2, 0)
    assert data_rows(out).equals(data_rows(serial_export))


def test_append_refuses_other_settings_and_episodes_no_longer_selected(recorded_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    export_lerobot(recorded_dir, options(out))
    with pytest.raises(ExcapError, match=r"other settings \(fps\)"):
        export_lerobot(recorded_dir, LeRobotExportOptions(out=out, fps=5, partner="oem-test", progress=False,
                                                          vcodec=CODEC, append=True))
    with pytest.raises(ExcapError, match="is not selected any more"):
        export_lerobot(recorded_dir, options(out, append=True, selection=EpisodeFilter(task="trenching")))
    with pytest.raises(ExcapError, match="--append"):  # without --append: a different plan is refused
        export_lerobot(recorded_dir, options(out, selection=EpisodeFilter(task="trenching")))


def test_bad_episodes_are_skipped_with_workers(episode_dir: Path, serial_export: Path, tmp_path: Path) -> None:
    source = next(p for p in sorted(episode_dir.glob("*.h5")) if operator_of(p) == "operator-anna-17")
    reasons = unexportable_copies(source, episode_dir)  # a dead camera, broken and odd-sized frames, another setup
    out = tmp_path / "skipping"
    heard: list[str] = []
    result = export_lerobot(episode_dir, options(out, workers=2, on_skip=lambda s: heard.append(s.episode_id)))
    assert result.episodes == 2 and sorted(heard) == sorted(reasons)
    assert sorted(s.episode_id for s in result.skipped) == sorted(reasons)
    report = "meta/excap_export.json"  # lists the skipped episodes
    assert {k: v for k, v in dataset_files(out).items() if k != report} == \
        {k: v for k, v in dataset_files(serial_export).items() if k != report}
    with pytest.raises(ExcapError, match="--strict"):
        export_lerobot(episode_dir, options(tmp_path / "strict", workers=2, strict=True))


def test_alignment_matches_the_readers_steps(recorded_dir: Path) -> None:
    for path in sorted(recorded_dir.glob("*.h5")):
        layout = episode_layout(path)
        with EpisodeReader(path) as reader:
            alignment, _ = align(reader, 7, layout)
            steps = list(reader.steps(rate_hz=7, cameras=layout.camera_names,
                                      state_signals=list(layout.state_names), joysticks=False))
        assert len(alignment) == len(steps) > 10
        assert alignment.times_ns.tolist() == [s.t_ns for s in steps]
        assert alignment.camera_rows["side"].tolist() == [s.sources["cameras/side"] for s in steps]
        np.testing.assert_array_equal(alignment.state, np.stack([s.observation["state"] for s in steps])
                                      .astype(np.float32))
        np.testing.assert_array_equal(alignment.action, np.stack([s.action for s in steps]).astype(np.float32))


def test_frames_are_streamed_not_held(recorded_dir: Path, tmp_path: Path) -> None:
    """At 100 steps per second a 2.5 s, 10 fps episode is 250 frames of 160x120: holding them would take
    250 x 57,600 bytes; the part holds a few."""
    path = sorted(recorded_dir.glob("*.h5"))[0]
    layout = episode_layout(path)
    task = EpisodeTask(path, 0, path.stem, 100, layout, CODEC, tmp_path / "parts", codec_threads=1)
    tracemalloc.start()
    try:
        part = export_episode_part(task)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frame_bytes = 160 * 120 * 3
    assert part.skipped is None and part.length >= 200
    assert peak < 30 * frame_bytes, f"peak {peak} bytes for {part.length} frames of {frame_bytes} bytes"
    assert pq.read_table(part_table_path(tmp_path / "parts", 0)).num_rows == part.length
    sampled = len(range(0, part.length, max(1, part.length // 100)))  # evenly spaced frames for image statistics
    assert part.stats["observation.images.side"]["count"] == [sampled]
    assert not list((tmp_path / "parts").rglob("*.partial.mp4"))
    assert os.path.getsize(tmp_path / "parts" / "episode-000000" / "observation.images.side.mp4") > 0


@fuzz_settings(60)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(1, 9), st.integers(0, 2**32 - 1), st.integers(1, 255))
def test_histogram_image_statistics_equal_the_pixel_statistics(count: int, height: int, width: int,
                                                               random_seed: int, spread: int) -> None:
    tried("ImageStatsAccumulator")
    images = np.random.default_rng(random_seed).integers(0, spread + 1, (count, height, width, 3)).astype(np.uint8)
    accumulator = feature_stats.ImageStatsAccumulator()
    for image in images:
        accumulator.add(image[:, :, ::-1].copy(), (2, 1, 0))  # BGR in, RGB statistics out
    got, expected = accumulator.stats(), feature_stats.image_stats(images)
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-12, err_msg=key)
