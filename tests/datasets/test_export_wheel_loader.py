"""Wheel loader episodes recorded with the simulator, exported to LeRobot and robomimic and read back: the state
and action names are the loader's own, and every step of every episode is a row."""

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from excap.datasets.export.lerobot import LeRobotExportOptions, export_lerobot
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
from excap.episode.reader import EpisodeReader
from excap.schemas.machine_kinds import MACHINE_KINDS
from tests.support import report

LOADER_STATE = ["LoaderArticulation.ArticulationAngle", "LoaderLinkage.LiftAngle", "LoaderLinkage.BucketAngle",
                "LoaderPressures.LiftHeadPressure", "LoaderPressures.LiftRodPressure",
                "LoaderPressures.TiltHeadPressure", "LoaderPressures.TiltRodPressure", "LoaderTravel.GroundSpeed",
                "ETC2.TransCurrentGear", "LoaderPayload.BucketPayload", "EEC1.EngSpeed"]
LOADER_ACTIONS = ["lift", "tilt", "steer", "throttle", "brake", "direction"]
OPERATOR = "operator-lena-41"
REGISTRY = f"operators:\n  - {{operator_id: {OPERATOR}, consent_to_share: true, consent_date: 2026-03-01}}\n"
FPS = 10


@pytest.fixture(scope="module")
def loader_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short simulated wheel loader episodes (one 160x120 camera at 10 fps) by a consenting operator."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    out = tmp_path_factory.mktemp("loader_episodes")
    for seed in (1, 2):
        run_sim_session(SimSessionOptions(out_dir=out, profile="wheel_loader_20t", duration_s=2.5, cameras=1,
                                          width=160, height=120, fps=FPS, seed=seed, operator_id=OPERATOR))
    (out / ".excap").mkdir()
    (out / ".excap" / "operators.yaml").write_text(REGISTRY, encoding="utf-8")
    return out


def episode_steps(folder: Path) -> dict[str, list]:
    """Episode id -> the steps at the export rate, as `EpisodeReader.steps` gives them."""
    steps = {}
    for path in sorted(folder.glob("*.h5")):
        with EpisodeReader(path) as reader:
            assert reader.metadata["machine_kind"] == "wheel_loader"
            steps[path.stem] = list(reader.steps(rate_hz=FPS, joysticks=False, decode=False))
    return steps


def test_the_registry_names_the_loader_state() -> None:
    assert list(MACHINE_KINDS["wheel_loader"].state_signals) == LOADER_STATE


def test_lerobot_export_of_loader_episodes(loader_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lerobot"
    result = export_lerobot(loader_dir, LeRobotExportOptions(out=out, fps=FPS, partner="oem-test", progress=False))
    assert result.episodes == 2 and not result.skipped
    info = json.loads((out / "meta" / "info.json").read_text())
    features = info["features"]
    assert features["observation.state"]["names"] == LOADER_STATE
    assert features["observation.state"]["shape"] == [len(LOADER_STATE)]
    assert features["action"]["names"] == LOADER_ACTIONS
    assert "observation.images.front" in features
    data = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet").to_pydict()
    episodes = pq.read_table(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    steps = episode_steps(loader_dir)
    assert info["total_frames"] == len(data["index"]) == sum(len(s) for s in steps.values())
    for episode in episodes:
        start, stop = episode["dataset_from_index"], episode["dataset_to_index"]
        recorded = steps[episode["excap/episode_id"]]
        assert stop - start == episode["length"] == len(recorded)
        state = np.array(data["observation.state"][start:stop])
        np.testing.assert_allclose(state, np.stack([s.observation["state"] for s in recorded]), rtol=1e-6)
        np.testing.assert_array_equal(np.array(data["action"][start:stop], dtype=np.float32),
                                      np.stack([s.action for s in recorded]))
        gear, payload = state[:, LOADER_STATE.index("ETC2.TransCurrentGear")], state[:, -2]
        assert set(np.unique(gear)) <= {-3, -2, -1, 0, 1, 2, 3, 4} and payload.min() >= 0
        report.record("loader export", f"lerobot rows, episode {episode['episode_index']}", stop - start)
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert len(stats["observation.state"]["mean"]) == len(LOADER_STATE) and len(stats["action"]["mean"]) == 6


def test_robomimic_export_of_loader_episodes(loader_dir: Path, tmp_path: Path) -> None:
    result = export_robomimic(loader_dir, RobomimicExportOptions(out=tmp_path / "out", fps=FPS, partner="oem-test",
                                                                 progress=False))
    steps = episode_steps(loader_dir)
    with h5py.File(result.out, "r") as handle:
        data = handle["data"]
        assert json.loads(data.attrs["excap_state_names"]) == LOADER_STATE
        assert json.loads(data.attrs["excap_action_names"]) == LOADER_ACTIONS
        env_kwargs = json.loads(data.attrs["env_args"])["env_kwargs"]
        assert env_kwargs["state_names"] == LOADER_STATE and env_kwargs["action_names"] == LOADER_ACTIONS
        assert sorted(data) == ["demo_0", "demo_1"]
        for name in sorted(data):
            demo = data[name]
            recorded = steps[demo.attrs["excap_episode_id"]]
            count = int(demo.attrs["num_samples"])
            assert count == len(recorded)
            assert demo["obs/state"].shape == (count, len(LOADER_STATE)) and demo["actions"].shape == (count, 6)
            assert demo["obs/front_image"].shape[0] == count
            np.testing.assert_allclose(demo["obs/state"][()], np.stack([s.observation["state"] for s in recorded]),
                                       rtol=1e-6)
            report.record("loader export", f"robomimic rows, {name}", count)
        assert int(data.attrs["total"]) == sum(len(s) for s in steps.values())


def test_a_folder_of_both_kinds_exports_one_kind_at_a_time(loader_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Loader and excavator episodes in one folder: `--machine-kind` exports each kind with its own names; without
    it, the kind of fewer episodes is skipped as another machine setup."""
    from excap.cli.datasets import main
    from excap.station.sim import SimSessionOptions, run_sim_session

    folder = tmp_path / "mixed"
    shutil.copytree(loader_dir, folder)
    run_sim_session(SimSessionOptions(out_dir=folder, duration_s=2.5, cameras=1, width=160, height=120, fps=FPS,
                                      seed=3, operator_id=OPERATOR))
    for kind, count, state in (("wheel_loader", 2, LOADER_STATE),
                               ("excavator", 1, list(MACHINE_KINDS["excavator"].state_signals))):
        out = tmp_path / kind
        assert main(["export", str(folder), "--format", "lerobot", "--out", str(out), "--machine-kind", kind,
                     "--fps", str(FPS), "--partner", "oem-test", "--no-progress"]) == 0
        info = json.loads((out / "meta" / "info.json").read_text())
        assert info["total_episodes"] == count and info["features"]["observation.state"]["names"] == state
    capsys.readouterr()
    result = export_robomimic(folder, RobomimicExportOptions(out=tmp_path / "all", fps=FPS, partner="oem-test",
                                                             progress=False))
    with h5py.File(result.out, "r") as handle:
        assert json.loads(handle["data"].attrs["excap_state_names"]) == LOADER_STATE
        (skipped,) = json.loads(handle["data"].attrs["excap_skipped_episodes"])
    assert "another machine setup" in skipped["reason"] and "5 state signals" in skipped["reason"]
