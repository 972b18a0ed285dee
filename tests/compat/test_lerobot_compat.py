"""An excap LeRobot export read by LeRobot's own LeRobotDataset (local folder, no hub access).

Skipped unless `lerobot` is importable; it runs in a separate environment with lerobot installed (see the
module docstring of excap.datasets.export.lerobot for the format).
"""

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.ray_cluster import RayCluster
from tests.support.requirements import require_lerobot

lerobot_dataset = require_lerobot()

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VIDEO_BACKEND = "torchcodec"
REGISTRY = "operators:\n  - {operator_id: operator-compat-1, display_name: Compat Person, consent_to_share: true}\n"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
    from excap.station.sim import SimSessionOptions, run_sim_session

    episodes = tmp_path_factory.mktemp("episodes")
    for seed in (1, 2):
        run_sim_session(SimSessionOptions(out_dir=episodes, duration_s=2.5, cameras=2, width=160, height=120, fps=10,
                                          seed=seed, operator_id="operator-compat-1"))
    (episodes / ".excap").mkdir()
    (episodes / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
    out = tmp_path_factory.mktemp("lerobot") / "excap_sim"
    export_lerobot(episodes, LeRobotExportOptions(out=out, fps=10, partner="compat", progress=False))
    return episodes, out


def test_lerobot_dataset_reads_the_export(exported: tuple[Path, Path]) -> None:
    import pyarrow.parquet as pq

    _, out = exported
    dataset = lerobot_dataset.LeRobotDataset("excap/sim", root=out, video_backend=VIDEO_BACKEND)
    info = json.loads((out / "meta" / "info.json").read_text())
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    assert dataset.num_episodes == 2 and len(dataset) == info["total_frames"] == len(data["index"])
    assert dataset.fps == 10
    assert sorted(dataset.meta.video_keys) == ["observation.images.side", "observation.images.top"]
    for index in (0, len(dataset) // 2, len(dataset) - 1):
        item = dataset[index]
        assert int(item["index"]) == index
        assert float(item["timestamp"]) == pytest.approx(data["timestamp"][index], abs=1e-6)
        np.testing.assert_allclose(item["action"].numpy(), data["action"][index], rtol=1e-6)
        np.testing.assert_allclose(item["observation.state"].numpy(), data["observation.state"][index], rtol=1e-6)
        for key in dataset.meta.video_keys:
            assert tuple(item[key].shape) == (3, 120, 160)
            assert float(item[key].min()) >= 0.0 and float(item[key].max()) <= 1.0
        assert item["task"] == "dig-and-load"


def test_lerobot_frames_match_the_videos(exported: tuple[Path, Path]) -> None:
    from excap.datasets.video import decode_rgb

    _, out = exported
    dataset = lerobot_dataset.LeRobotDataset("excap/sim", root=out, video_backend=VIDEO_BACKEND)
    episode = dataset.meta.episodes[1]
    start = episode["dataset_from_index"]
    frames = decode_rgb(out / "videos" / "observation.images.side" / "chunk-000" / "file-001.mp4")
    assert len(frames) == episode["length"]
    for offset in (0, episode["length"] - 1):
        image = dataset[start + offset]["observation.images.side"].permute(1, 2, 0).numpy() * 255.0
        assert np.abs(image - frames[offset].astype(float)).mean() < 2.0


def test_lerobot_delta_timestamps(exported: tuple[Path, Path]) -> None:
    _, out = exported
    dataset = lerobot_dataset.LeRobotDataset("excap/sim", root=out, video_backend=VIDEO_BACKEND,
                                             delta_timestamps={"action": [0.0, 0.1, 0.2],
                                                               "observation.images.side": [-0.1, 0.0]})
    item = dataset[5]
    assert tuple(item["action"].shape) == (3, 6)
    assert tuple(item["observation.images.side"].shape) == (2, 3, 120, 160)


def test_lerobot_dataset_reads_a_wheel_loader_export(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The second machine kind: the loader's own cameras, state signals and machine functions."""
    import pyarrow.parquet as pq

    from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
    from excap.drivers.machine.profiles import load_profile
    from excap.station.sim import SimSessionOptions, run_sim_session

    episodes = tmp_path_factory.mktemp("loader-episodes")
    run_sim_session(SimSessionOptions(out_dir=episodes, duration_s=2.5, cameras=2, width=160, height=120, fps=10,
                                      seed=3, profile="wheel_loader_20t", operator_id="operator-compat-1"))
    (episodes / ".excap").mkdir()
    (episodes / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
    out = tmp_path_factory.mktemp("lerobot") / "excap_loader"
    export_lerobot(episodes, LeRobotExportOptions(out=out, fps=10, partner="compat", progress=False))
    dataset = lerobot_dataset.LeRobotDataset("excap/loader", root=out, video_backend=VIDEO_BACKEND)
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    functions = list(load_profile("wheel_loader_20t").functions)
    assert dataset.num_episodes == 1 and len(dataset) == len(data["index"]) > 0
    assert dataset.meta.features["action"]["names"] == functions
    assert "LoaderLinkage.LiftAngle" in dataset.meta.features["observation.state"]["names"]
    assert sorted(dataset.meta.video_keys) == ["observation.images.front", "observation.images.rear"]
    item = dataset[len(dataset) - 1]
    np.testing.assert_allclose(item["action"].numpy(), data["action"][-1], rtol=1e-6)
    assert tuple(item["observation.images.front"].shape) == (3, 120, 160)
    assert item["task"] == "load-and-carry"


def test_lerobot_reads_an_appended_h264_export(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """An H.264 export made in two runs (the second with --append, so two data files), by two workers."""
    import shutil

    import pyarrow.parquet as pq

    from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot

    episodes, _ = exported
    first = tmp_path / "first"  # the first episode alone (same file, same SHA-256), same registry and key
    first.mkdir()
    shutil.copytree(episodes / ".excap", first / ".excap", ignore=shutil.ignore_patterns("catalogue*"))
    shutil.copy2(sorted(episodes.glob("*.h5"))[0], first)
    out = tmp_path / "excap_h264"
    export_lerobot(first, LeRobotExportOptions(out=out, fps=10, partner="compat", progress=False, vcodec="libx264"))
    export_lerobot(episodes, LeRobotExportOptions(out=out, fps=10, partner="compat", progress=False,
                                                  vcodec="libx264", workers=2, append=True))
    assert len(list((out / "data").rglob("*.parquet"))) == 2
    dataset = lerobot_dataset.LeRobotDataset("excap/h264", root=out, video_backend=VIDEO_BACKEND)
    rows = [pq.read_table(p).to_pydict() for p in sorted((out / "data").rglob("*.parquet"))]
    timestamps = [t for part in rows for t in part["timestamp"]]
    assert dataset.num_episodes == 2 and len(dataset) == len(timestamps)
    assert dataset.meta.info["features"]["observation.images.side"]["info"]["video.codec"] == "h264"
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        assert int(item["index"]) == index
        assert float(item["timestamp"]) == pytest.approx(timestamps[index], abs=1e-6)
        assert tuple(item["observation.images.side"].shape) == (3, 120, 160)


def test_lerobot_reads_an_export_made_on_a_ray_cluster(exported: tuple[Path, Path], ray_cluster: RayCluster,
                                                       tmp_path: Path) -> None:
    """The two episodes exported by Ray tasks on a local cluster (a head and two one-CPU worker nodes,
    tests/support/ray_cluster.py): LeRobot reads it, its rows are the ones written, and it equals the serial
    export of the same episodes with the same codec."""
    import pyarrow.parquet as pq

    from excap.cluster.export_parts import parts_map
    from excap.cluster.ray_engine import RayExecutor
    from excap.datasets.export.lerobot import WORK_DIR, LeRobotExportOptions, export_lerobot

    episodes, _ = exported

    def export(out: Path, **kwargs: Any) -> dict[str, bytes]:
        export_lerobot(episodes, LeRobotExportOptions(out=out, fps=10, partner="compat", progress=False,
                                                      vcodec="libx264", **kwargs))
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                if p.is_file() and WORK_DIR not in p.parts}

    out = tmp_path / "excap_ray"
    with RayExecutor(address=ray_cluster.address) as executor:
        on_ray = export(out, map_parts=parts_map(executor, retries=2))
    assert on_ray == export(tmp_path / "excap_serial")
    dataset = lerobot_dataset.LeRobotDataset("excap/ray", root=out, video_backend=VIDEO_BACKEND)
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    assert dataset.num_episodes == 2 and len(dataset) == len(data["index"]) > 0
    assert sorted(dataset.meta.video_keys) == ["observation.images.side", "observation.images.top"]
    for index in (0, len(dataset) - 1):
        item = dataset[index]
        assert int(item["index"]) == index and int(item["episode_index"]) == data["episode_index"][index]
        np.testing.assert_allclose(item["action"].numpy(), data["action"][index], rtol=1e-6)
        for key in dataset.meta.video_keys:
            assert tuple(item[key].shape) == (3, 120, 160)
