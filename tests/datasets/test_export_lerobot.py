import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from excap.catalogue.index import EpisodeFilter
from excap.cli.datasets import main
from excap.core.errors import ExcapError
from excap.datasets.export import lerobot as module
from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
from excap.datasets.video import decode_rgb
from excap.episode.reader import EpisodeReader
from excap.people.registry import key_path, load_or_create_key, pseudonym
from tests.support.commands import excap_command
from tests.support.hostile_episodes import operator_of, unexportable_copies
from tests.support.paths import REPO
from tests.support.recorded_folder import OPERATORS, all_bytes
from tests.support.waiting import wait_for


def options(out: Path, **kwargs: object) -> LeRobotExportOptions:
    return LeRobotExportOptions(out=out, fps=10, partner="oem-test", progress=False, **kwargs)


def parquet_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.parquet"))
            if module.WORK_DIR not in p.parts}


@pytest.fixture(scope="module")
def exported(recorded_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "dataset"
    result = export_lerobot(recorded_dir, options(out))
    assert result.episodes == 2 and result.excluded == {"no_consent": 1}
    return out


def test_structure_and_info(exported: Path) -> None:
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == 2 and info["total_tasks"] == 2
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    features = info["features"]
    assert features["observation.state"]["names"][0] == "BoomSSI2.PitchAngleExRange"
    assert features["action"]["names"][:3] == ["boom", "arm", "bucket"]
    video = features["observation.images.side"]
    assert video["dtype"] == "video" and video["shape"] == [120, 160, 3]
    assert video["info"]["video.pix_fmt"] == "yuv420p" and video["info"]["video.fps"] == 10
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert name in features
    data = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet")
    assert data.num_rows == info["total_frames"]
    stats = json.loads((exported / "meta" / "stats.json").read_text())
    assert np.array(stats["observation.images.side"]["mean"]).shape == (3, 1, 1)
    assert len(stats["action"]["q99"]) == 6 and stats["index"]["count"] == [info["total_frames"]]
    tasks = pq.read_table(exported / "meta" / "tasks.parquet").to_pandas()
    assert list(tasks.index) == ["dig-and-load", "trenching"] and list(tasks["task_index"]) == [0, 1]


def test_frames_match_the_episodes(exported: Path, recorded_dir: Path) -> None:
    data = pq.read_table(exported / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    assert [e["episode_index"] for e in episodes] == [0, 1]
    assert data["index"] == list(range(len(data["index"])))
    sources = {p.stem: p for p in recorded_dir.glob("*.h5")}
    for episode in episodes:
        start, stop = episode["dataset_from_index"], episode["dataset_to_index"]
        assert stop - start == episode["length"]
        assert set(data["episode_index"][start:stop]) == {episode["episode_index"]}
        assert data["frame_index"][start:stop] == list(range(episode["length"]))
        video = exported / f"videos/observation.images.side/chunk-000/file-{episode['episode_index']:03d}.mp4"
        frames = decode_rgb(video)
        assert len(frames) == episode["length"] and frames[0].shape == (120, 160, 3)
        assert episode["videos/observation.images.side/from_timestamp"] == 0.0
        with EpisodeReader(sources[episode["excap/episode_id"]]) as reader:
            steps = list(reader.steps(rate_hz=10, joysticks=False))
            assert len(steps) == episode["length"]
            measured = [(s.t_ns - steps[0].t_ns) / 1e9 for s in steps]
            np.testing.assert_allclose(data["timestamp"][start:stop], measured, atol=1e-6)
            assert episode["excap/first_step_offset_s"] == pytest.approx((steps[0].t_ns - reader.start_t_ns) / 1e9)
            np.testing.assert_array_equal(np.array(data["action"][start:stop], dtype=np.float32),
                                          np.stack([s.action for s in steps]))
            np.testing.assert_allclose(np.array(data["observation.state"][start:stop]),
                                       np.stack([s.observation["state"] for s in steps]), rtol=1e-6)
            # lossy video: the decoded frame is close to the recorded camera image (RGB)
            original = steps[5].observation["cameras/side"][:, :, ::-1].astype(float)
            assert np.abs(frames[5].astype(float) - original).mean() < 12


def test_consent_and_pseudonyms(exported: Path, recorded_dir: Path) -> None:
    episodes = pq.read_table(exported / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    key = load_or_create_key(key_path(recorded_dir))
    assert [e["excap/operator"] for e in episodes] == [pseudonym(key, "oem-test", "operator-anna-17"),
                                                       pseudonym(key, "oem-test", "operator-cleo-31")]
    report = json.loads((exported / "meta" / "excap_export.json").read_text())
    assert report["excluded_episodes"] == {"no_consent": 1} and report["exported_episodes"] == 2
    blob = all_bytes(exported)
    for operator_id, (name, _) in OPERATORS.items():
        assert operator_id.encode() not in blob
        for part in name.split():
            assert part.encode() not in blob
    assert b"oem-test" not in blob


def test_byte_identical_reexport(exported: Path, recorded_dir: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    export_lerobot(recorded_dir, options(again))
    assert parquet_files(again) == parquet_files(exported)
    for name in ("info.json", "stats.json", "excap_export.json"):
        assert (again / "meta" / name).read_bytes() == (exported / "meta" / name).read_bytes()


def test_resume_after_a_real_kill(exported: Path, recorded_dir: Path, tmp_path: Path) -> None:
    """`excap export` is killed (SIGKILL) while it makes the second episode's part, then run again."""
    out = tmp_path / "resumed"
    command = excap_command("export", str(recorded_dir), "--format", "lerobot", "--out", str(out), "--fps", "10",
                            "--partner", "oem-test", "--no-progress")
    manifest_path = out / module.WORK_DIR / "manifest.json"

    def first_part_done() -> bool:  # the manifest is replaced atomically: a read sees a whole one
        return manifest_path.is_file() and "0" in json.loads(manifest_path.read_text()).get("done", {})

    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: first_part_done() or process.poll() is not None, timeout=120, interval=0.002,
                 message="the export to finish the first episode")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the export ended before it could be killed"
    assert not (out / "meta" / "info.json").exists()
    manifest = json.loads((out / module.WORK_DIR / "manifest.json").read_text())
    assert list(manifest["done"]) == ["0"]
    rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "2 episodes (1 done before)" in rerun.stdout
    assert parquet_files(out) == parquet_files(exported)
    for name in ("info.json", "stats.json"):
        assert (out / "meta" / name).read_bytes() == (exported / "meta" / name).read_bytes()
    assert not list(out.rglob("*.partial.mp4"))
    with pytest.raises(ExcapError, match="other settings"):
        export_lerobot(recorded_dir, LeRobotExportOptions(out=out, fps=5, partner="oem-test", progress=False))


def bad_copies(episode_dir: Path) -> dict[str, str]:
    source = next(p for p in sorted(episode_dir.glob("*.h5")) if operator_of(p) == "operator-anna-17")
    return unexportable_copies(source, episode_dir)


def test_bad_episodes_are_skipped_and_reported(episode_dir: Path, exported: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    reasons = bad_copies(episode_dir)
    out = tmp_path / "skipping"
    assert main(["export", str(episode_dir), "--format", "lerobot", "--out", str(out), "--partner", "oem-test",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("excap export: skipped")]
    assert len(lines) == 4
    for episode_id, reason in reasons.items():
        assert any(episode_id in line and reason in line for line in lines), (episode_id, lines)
    assert "2 episodes" in captured.out and "skipped 4: " in captured.out
    report = json.loads((out / "meta" / "excap_export.json").read_text())
    assert report["exported_episodes"] == 2
    assert sorted(s["episode_id"] for s in report["skipped_episodes"]) == sorted(reasons)
    for skipped in report["skipped_episodes"]:
        assert reasons[skipped["episode_id"]] in skipped["reason"] and str(tmp_path) not in skipped["reason"]
    assert parquet_files(out) == parquet_files(exported)  # the good episodes, indexed as without the bad ones


def test_strict_export_fails_on_a_bad_episode(episode_dir: Path, tmp_path: Path) -> None:
    bad_copies(episode_dir)
    out = tmp_path / "strict"
    with pytest.raises(ExcapError, match="--strict") as caught:
        export_lerobot(episode_dir, options(out, strict=True))
    assert "20260101T000000Z_bad-" in str(caught.value) and "\n" not in str(caught.value)
    assert not (out / "meta" / "info.json").exists()


def test_filters_and_cli(recorded_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "trenching"
    assert main(["export", str(recorded_dir), "--format", "lerobot", "--out", str(out), "--task", "trenching",
                 "--partner", "oem-test", "--no-progress"]) == 0
    assert "1 episodes" in capsys.readouterr().out
    assert json.loads((out / "meta" / "info.json").read_text())["total_episodes"] == 1
    with pytest.raises(ExcapError, match="no episodes"):
        export_lerobot(recorded_dir, options(tmp_path / "none",
                                             selection=EpisodeFilter(operator_id="operator-bert-23")))
