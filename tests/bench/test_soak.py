"""bench/soak.py as a user runs it, compressed to seconds: rolling episodes, one JSON line per interval, only the
last --keep episodes left on disk, a summary at the end."""

import json
import signal
import subprocess
import sys

import h5py
import pytest

from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_soak_rolls_episodes_and_samples_memory_drops_and_disk(tmp_path) -> None:
    out = tmp_path / "soak"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--hours", str(10 / 3600),
                          "--episode-minutes", str(3 / 60), "--interval", "1", "--cameras", "1", "--size", "160x120",
                          "--fps", "15", "--keep", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in (out / "soak.jsonl").read_text().splitlines()]
    samples, summary = lines[:-1], lines[-1]
    assert summary["summary"] == "soak" and json.loads(run.stdout.splitlines()[-1]) == summary
    assert len(samples) >= 5 and all(s["rss_mb"] > 0 for s in samples)
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert summary["episodes"] >= 2 and summary["invalid_episodes"] == 0 and summary["drops"] == 0
    kept = sorted((out / "episodes").glob("*.h5"))
    assert len(kept) == 1 and validate_episode(kept[0]) == []
    assert summary["written_mb"] > sum(path.stat().st_size for path in kept) / 1e6  # older episodes were deleted
    assert max(s["episodes"] for s in samples) == summary["episodes"]
    shown = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--report", str(out / "soak.jsonl")],
                           capture_output=True, text=True, timeout=60, cwd=REPO)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["finished"] and report["summary"] == summary and report["drops"] == 0
    assert report["episodes_finished"] == summary["episodes"] and report["samples"] == len(samples)
    rows = report["per_episode"]
    assert [row["episode"] for row in rows] == list(range(1, len(rows) + 1)) and len(rows) >= summary["episodes"]
    assert all(row["rss_mb_min"] <= row["rss_mb_max"] for row in rows)


def test_soak_refuses_a_wrong_duration(tmp_path) -> None:
    run = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--hours", "0", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 2 and "--hours" in run.stderr.splitlines()[-1]


def test_soak_with_the_devices_open_records_every_episode_on_them(tmp_path) -> None:
    out = tmp_path / "soak"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "soak.py"), "--station", "--hours", str(8 / 3600),
                          "--episode-minutes", str(3 / 60), "--interval", "1", "--cameras", "1", "--size", "160x120",
                          "--fps", "15", "--keep", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.splitlines()[-1])
    assert summary["devices"] == "open" and summary["episodes"] >= 2
    assert summary["invalid_episodes"] == 0 and summary["drops"] == 0
    kept = sorted((out / "episodes").glob("*.h5"))
    assert len(kept) == 2 and all(validate_episode(path) == [] for path in kept)
    # one station: the episodes follow each other on the same devices, each with its own id
    with h5py.File(kept[0], "r") as first, h5py.File(kept[1], "r") as second:
        assert first.attrs["episode_id"] != second.attrs["episode_id"]


def soak_lines(log) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.endswith("}")]


def test_excap_bench_soak_burns_in_a_station_config_and_ctrl_c_ends_it_with_its_summary(tmp_path) -> None:
    """A station config's devices soaked (a burn-in), stopped by Ctrl-C: the running episode is finished, the summary
    written, exit 130."""
    out = tmp_path / "burn-in"
    process = subprocess.Popen(excap_command("bench", "soak", "--config", str(REPO / "examples" / "station_sim.yaml"),
                                             "--hours", "1", "--episode-minutes", str(2 / 60), "--interval", "0.5",
                                             "--keep", "5", "--out", str(out)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        wait_for(lambda: any(line.get("episodes", 0) >= 1 for line in soak_lines(out / "soak.jsonl")), timeout=60,
                 message="the first episode of the burn-in")
        process.send_signal(signal.SIGINT)
        _stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    summary = soak_lines(out / "soak.jsonl")[-1]
    assert summary["summary"] == "soak" and summary["devices"].startswith("station config ")
    assert summary["episodes"] >= 2 and summary["invalid_episodes"] == 0 and summary["drops"] == 0
    kept = sorted((out / "episodes").glob("*.h5"))
    assert len(kept) == summary["episodes"] and all(validate_episode(path) == [] for path in kept)
    with h5py.File(kept[0], "r") as episode:
        assert len(episode.get("cameras", {})) == 0 and len(episode["can"]) > 0  # the config has no cameras


def test_excap_bench_soak_report_of_a_missing_log_is_one_line(tmp_path) -> None:
    run = subprocess.run(excap_command("bench", "soak", "--report", str(tmp_path / "none.jsonl")),
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 2 and run.stderr.strip() == f"excap: error: {tmp_path / 'none.jsonl'}: no such soak log"
