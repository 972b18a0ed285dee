"""robomimic exports made of per-episode demo parts (the engine's tasks: here two local worker processes) have the
content of the serial export: every group, dataset and attribute equal at the h5py level; bad episodes are
skipped the same way, and no parts are left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from excap.cli.datasets import main
from excap.cluster.engine import ProcessExecutor
from excap.cluster.export_parts import parts_map
from excap.datasets.export.robomimic import RobomimicExportOptions, export_robomimic
from tests.support.hdf5_contents import hdf5_contents
from tests.support.hostile_episodes import operator_of, unexportable_copies


def options(out: Path, **kwargs: object) -> RobomimicExportOptions:
    return RobomimicExportOptions(out=out, fps=10, partner="oem-test", progress=False, **kwargs)


def test_demo_parts_on_two_processes_equal_the_serial_export(recorded_dir: Path, tmp_path: Path) -> None:
    serial = export_robomimic(recorded_dir, options(tmp_path / "serial.hdf5"))
    with ProcessExecutor(2) as executor:
        parted = export_robomimic(recorded_dir, options(tmp_path / "parts.hdf5", map_parts=parts_map(executor, 2)))
    assert (parted.episodes, parted.frames) == (serial.episodes, serial.frames) == (2, parted.frames)
    contents = hdf5_contents(tmp_path / "parts.hdf5")
    assert contents == hdf5_contents(tmp_path / "serial.hdf5")
    assert contents["data/demo_0/next_obs/side_image"][-1] is True  # virtual, as in the serial export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts.hdf5", "serial.hdf5"]


def test_bad_episodes_are_skipped_alike_and_the_cli_runs_parts(episode_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    source = next(p for p in sorted(episode_dir.glob("*.h5")) if operator_of(p) == "operator-anna-17")
    reasons = unexportable_copies(source, episode_dir)  # a dead camera, broken and odd-sized frames, another setup
    folder = episode_dir
    serial = export_robomimic(folder, options(tmp_path / "serial.hdf5"))
    assert sorted(s.episode_id for s in serial.skipped) == sorted(reasons)
    assert main(["export", str(folder), "--format", "robomimic", "--out", str(tmp_path / "cli.hdf5"), "--partner",
                 "oem-test", "--workers", "2", "--no-progress"]) == 0
    assert f"skipped {len(serial.skipped)}" in capsys.readouterr().out
    assert hdf5_contents(tmp_path / "cli.hdf5") == hdf5_contents(tmp_path / "serial.hdf5")
