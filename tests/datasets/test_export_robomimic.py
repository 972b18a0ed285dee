import json
import math
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from excap.core.errors import ConfigError, ExcapError
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic, split_demos
from excap.episode.reader import EpisodeReader
from excap.schemas.machine_kinds import machine_kind
from tests.support import report
from tests.support.commands import excap_command
from tests.support.hostile_episodes import operator_of, unexportable_copies
from tests.support.paths import REPO
from tests.support.recorded_folder import OPERATORS, all_bytes
from tests.support.robomimic import check_robomimic_layout


def test_robomimic_layout(recorded_dir: Path, tmp_path: Path) -> None:
    result = export_robomimic(recorded_dir, RobomimicExportOptions(out=tmp_path / "out", fps=10, partner="oem-test",
                                                                   image_size=(84, 64), valid_ratio=0.5,
                                                                   progress=False))
    assert result.out == tmp_path / "out" / "robomimic.hdf5" and result.excluded == {"no_consent": 1}
    sources = {p.stem: p for p in recorded_dir.glob("*.h5")}
    with h5py.File(result.out, "r") as handle:
        data = handle["data"]
        assert sorted(data) == ["demo_0", "demo_1"]
        # states / obs/state: the machine kind's state vector (excap.schemas.machine_kinds), as in LeRobot
        assert json.loads(data.attrs["excap_state_names"]) == list(machine_kind("excavator").state_signals)
        env_args = json.loads(data.attrs["env_args"])
        assert env_args["env_kwargs"]["action_names"][0] == "boom" and "type" in env_args
        total = 0
        for name in ("demo_0", "demo_1"):
            demo = data[name]
            count = int(demo.attrs["num_samples"])
            total += count
            assert demo["obs/state"].shape == (count, 5) and demo["obs/state"].dtype == np.float32
            assert demo["obs/side_image"].shape == (count, 64, 84, 3) and demo["obs/side_image"].dtype == np.uint8
            # next_obs: obs shifted by one step, the last step repeated
            for key in ("state", "side_image"):
                obs, following = demo[f"obs/{key}"][()], demo[f"next_obs/{key}"][()]
                np.testing.assert_array_equal(following[:-1], obs[1:])
                np.testing.assert_array_equal(following[-1], obs[-1])
            # states: the machine state vector (LeRobot's observation.state), decoded from CAN
            np.testing.assert_array_equal(demo["states"][()], demo["obs/state"][()])
            assert np.ptp(demo["states"][()], axis=0).any()  # the machine moved: a real signal, not zeros
            image = demo["obs/side_image"]
            assert image.chunks == (1, 64, 84, 3) and image.compression == "gzip"
            assert demo["actions"].shape == (count, 6)
            assert not demo["rewards"][()].any()
            assert demo["dones"][()].tolist() == [0] * (count - 1) + [1]
            with EpisodeReader(sources[demo.attrs["excap_episode_id"]]) as reader:
                steps = list(reader.steps(rate_hz=10, joysticks=False))
            assert len(steps) == count
            np.testing.assert_array_equal(demo["actions"][()], np.stack([s.action for s in steps]))
        assert int(data.attrs["total"]) == total
        train = [n.decode() for n in handle["mask/train"][()]]
        valid = [n.decode() for n in handle["mask/valid"][()]]
        assert sorted(train + valid) == ["demo_0", "demo_1"] and len(valid) == 1
        assert json.loads(handle.attrs["excap_export"])["format"] == "robomimic"
    assert check_robomimic_layout(result.out) == []
    blob = all_bytes(tmp_path / "out")
    for operator_id in OPERATORS:
        assert operator_id.encode() not in blob


def test_split_is_deterministic() -> None:
    ids = [f"episode-{i}" for i in range(20)]
    train, valid = split_demos(ids, 0.1)
    assert split_demos(ids, 0.1) == (train, valid)
    assert split_demos(list(reversed(ids)), 0.1)[1] == sorted(19 - i for i in valid)  # by id, not by position
    assert len(valid) == 2 and sorted(train + valid) == list(range(20))
    assert split_demos(["only"], 0.5) == ([0], [])


@pytest.mark.parametrize("count", [2, 3, 5, 9, 10, 11, 40])
@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.5, 0.99])
def test_split_never_leaves_valid_or_train_empty(count: int, ratio: float) -> None:
    train, valid = split_demos([f"ep-{i}" for i in range(count)], ratio)
    assert train and valid and sorted(train + valid) == list(range(count))
    assert len(valid) == min(count - 1, max(1, math.ceil(ratio * count)))


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, float("nan")])
def test_valid_ratio_out_of_range_is_refused(recorded_dir: Path, tmp_path: Path, ratio: float) -> None:
    with pytest.raises(ConfigError, match="--valid-ratio"):
        export_robomimic(recorded_dir, RobomimicExportOptions(out=tmp_path / "x.hdf5", valid_ratio=ratio,
                                                              progress=False))


def test_compressed_images_per_20_s(recorded_dir: Path, tmp_path: Path) -> None:
    """Images are stored once (next_obs is a virtual view of obs), compressed, one chunk per frame; the figures are
    per 20 s of recording."""
    result = export_robomimic(recorded_dir, RobomimicExportOptions(out=tmp_path / "out.hdf5", fps=10,
                                                                   partner="oem-test", progress=False))
    raw = stored = 0
    with h5py.File(result.out, "r") as handle:
        for demo in handle["data"].values():
            for group in ("obs", "next_obs"):
                for dataset in demo[group].values():
                    if dataset.ndim == 4:
                        raw += dataset.nbytes  # what the same arrays take uncompressed, as separate datasets
                        stored += 0 if dataset.is_virtual else dataset.id.get_storage_size()
                        assert dataset.is_virtual == (group == "next_obs")
    seconds = result.frames / 10
    section = "robomimic images (MB per 20 s at 10 fps, one 160x120 simulated camera, obs + next_obs)"
    report.record(section, "uncompressed", round(raw / seconds * 20 / 1e6, 2))
    report.record(section, "stored (gzip 4, next_obs virtual)", round(stored / seconds * 20 / 1e6, 2))
    assert 0 < stored < raw / 3
    assert result.out.stat().st_size < raw / 2


def test_blur_faces_option_runs_the_detector(recorded_dir: Path, tmp_path: Path) -> None:
    result = export_robomimic(recorded_dir, RobomimicExportOptions(out=tmp_path / "blurred.hdf5", fps=5,
                                                                   partner="oem-test", blur_faces=True,
                                                                   progress=False))
    assert result.out.is_file() and result.faces_blurred == 0  # the simulated cameras show no people


def test_bad_episodes_are_skipped_and_listed(episode_dir: Path, tmp_path: Path) -> None:
    source = next(p for p in sorted(episode_dir.glob("*.h5")) if operator_of(p) == "operator-anna-17")
    reasons = unexportable_copies(source, episode_dir)
    heard: list[str] = []
    options = RobomimicExportOptions(out=tmp_path / "out.hdf5", partner="oem-test", progress=False,
                                     on_skip=lambda skipped: heard.append(skipped.line()))
    result = export_robomimic(episode_dir, options)
    assert result.episodes == 2 and sorted(s.episode_id for s in result.skipped) == sorted(reasons)
    assert len(heard) == 4
    with h5py.File(result.out, "r") as handle:
        assert sorted(handle["data"]) == ["demo_0", "demo_1"]
        listed = json.loads(handle["data"].attrs["excap_skipped_episodes"])
        assert {s["episode_id"] for s in listed} == set(reasons)
        for skipped in listed:
            assert reasons[skipped["episode_id"]] in skipped["reason"]
    with pytest.raises(ExcapError, match="--strict"):
        export_robomimic(episode_dir, RobomimicExportOptions(out=tmp_path / "strict.hdf5", partner="oem-test",
                                                             progress=False, strict=True))
    assert not (tmp_path / "strict.hdf5").exists() and not list(tmp_path.glob("strict*"))


def test_skips_go_by_file_not_by_episode_id(episode_dir: Path, tmp_path: Path) -> None:
    """A bad copy carrying the same episode id as good episodes leaves the good ones in the export."""
    source = next(p for p in sorted(episode_dir.glob("*.h5")) if operator_of(p) == "operator-anna-17")
    with h5py.File(source, "r") as handle:
        same_id = str(handle.attrs["episode_id"])
    shutil.copyfile(source, episode_dir / "zz-same-id-good.h5")
    for episode_id in unexportable_copies(source, episode_dir):
        bad = episode_dir / f"{episode_id}.h5"
        with h5py.File(bad, "r+") as handle:
            handle.attrs["episode_id"] = same_id
    result = export_robomimic(episode_dir, RobomimicExportOptions(out=tmp_path / "out.hdf5", partner="oem-test",
                                                                  progress=False))
    assert result.episodes == 3 and len(result.skipped) == 4
    assert {s.episode_id for s in result.skipped} == {same_id}


def test_valid_ratio_on_the_command_line(recorded_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.hdf5"
    done = subprocess.run(excap_command("export", str(recorded_dir), "--format", "robomimic", "--out", str(out),
                                        "--fps", "5", "--valid-ratio", "0.9", "--no-progress"),
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    with h5py.File(out, "r") as handle:
        assert len(handle["mask/train"]) == 1 and len(handle["mask/valid"]) == 1  # two demos: one of each
    refused = subprocess.run(excap_command("export", str(recorded_dir), "--format", "lerobot", "--out",
                                           str(tmp_path / "lr"), "--valid-ratio", "0.2"),
                             capture_output=True, text=True, timeout=300, cwd=REPO)
    assert refused.returncode == 2 and refused.stderr.startswith("excap: error: ") and "--valid-ratio" in refused.stderr
