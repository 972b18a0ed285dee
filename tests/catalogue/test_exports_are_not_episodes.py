"""Exports are never episodes: a robomimic export written into DIR/exports/ (or beside the episodes), and any
folder holding an export marker, are left out of `index`, `list`, `ledger` and the station's last episodes, without
a warning and without a blank row."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py

from excap.station.episodes import recent_episodes
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.recorded_folder import OPERATORS


def run(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(excap_command(*args), capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def test_exports_are_not_catalogued_listed_or_counted(episode_dir: Path) -> None:
    episodes = sorted(p.name for p in episode_dir.glob("*.h5"))
    run("index", str(episode_dir))  # catalogued before any export exists
    run("export", str(episode_dir), "--format", "robomimic", "--out", str(episode_dir / "exports" / "rm"),
        "--partner", "acme", "--fps", "5", "--no-progress")
    run("export", str(episode_dir), "--format", "robomimic", "--out", str(episode_dir / "beside.hdf5"),
        "--partner", "acme", "--fps", "5", "--no-progress")
    assert (episode_dir / "exports" / "rm" / "robomimic.hdf5").is_file()
    marked = episode_dir / "datasets" / "lerobot-copy"  # a folder with an export marker, holding an episode copy
    (marked / "meta").mkdir(parents=True)
    (marked / "meta" / "info.json").write_text(json.dumps({"codebase_version": "v3.0"}))
    shutil.copyfile(episode_dir / episodes[0], marked / "copy.h5")
    with h5py.File(episode_dir / "beside.hdf5", "r") as handle:
        assert "excap_export" in handle.attrs and "data/demo_0/next_obs" in handle

    index = run("index", str(episode_dir), "--json")
    report = json.loads(index.stdout)
    assert report["skipped"] == [] and report["invalid"] == [] and report["added"] == []
    assert index.stderr == ""

    listed = run("list", str(episode_dir), "--json")
    assert sorted(Path(r["path"]).name for r in json.loads(listed.stdout)) == episodes
    assert all(r["valid"] for r in json.loads(listed.stdout)) and listed.stderr == ""
    table = run("list", str(episode_dir)).stdout
    assert "INVALID" not in table and "exports" not in table and "beside" not in table

    ledger = run("ledger", str(episode_dir))
    rows = ledger.stdout.splitlines()[1:-2]  # between the header and the two total lines
    assert sorted(row.split()[0] for row in rows) == sorted(OPERATORS)
    assert ledger.stdout.splitlines()[-2].startswith(f"{len(episodes)} episodes") and ledger.stderr == ""

    recent = recent_episodes(episode_dir, limit=10)
    assert sorted(e.file for e in recent) == episodes and all(not e.problem for e in recent)


def test_a_foreign_hdf5_file_is_still_reported(episode_dir: Path) -> None:
    """Only exports are left out silently: an HDF5 file of another application is skipped with its reason."""
    with h5py.File(episode_dir / "foreign.h5", "w") as handle:
        handle.attrs["schema"] = "another.application"
    result = run("index", str(episode_dir), "--json")
    skipped = json.loads(result.stdout)["skipped"]
    assert [item["path"] for item in skipped] == ["foreign.h5"] and "not an excap episode" in skipped[0]["problem"]
