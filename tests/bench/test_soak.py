"""bench/soak.py as a user runs it, compressed to seconds: rolling episodes, one JSON line per interval, only the
last --keep episodes left on disk, a summary at the end."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import pytest

from excap.bench.soak import EpisodeCheck, Soak, SoakSettings, check_episode
from excap.bench.soak_log import progress, read_log, report
from excap.core.clock import now_ns
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec
from excap.episode.summary import summarize, summary_text
from excap.episode.validation import validate_episode
from excap.record.recorder import Recorder, RecorderConfig
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
    samples, summary = [line for line in lines if "t_s" in line], lines[-1]
    named = [line for line in lines if "at_s" in line]  # one line per finished episode
    assert summary["summary"] == "soak" and json.loads(run.stdout.splitlines()[-1]) == summary
    assert len(samples) >= 5 and all(s["rss_mb"] > 0 for s in samples)
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert summary["episodes"] >= 2 and summary["invalid_episodes"] == 0 and summary["drops"] == 0
    kept = sorted((out / "episodes").glob("*.h5"))
    assert len(kept) == 1 and validate_episode(kept[0]) == []
    assert summary["written_mb"] > sum(path.stat().st_size for path in kept) / 1e6  # older episodes were deleted
    assert max(s["episodes"] for s in samples) == summary["episodes"]
    assert [line["episode"] for line in named] == list(range(1, summary["episodes"] + 1))
    assert all(line["drops"] == {} and line["problems"] == 0 for line in named)
    assert named[-1]["file"] == kept[0].name and summary["kept_for_inspection"] == []
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


def episode_with_drops(folder) -> Path:
    """A real episode whose camera queue overflowed: 25 frames dropped (the recorder's own drop event)."""
    recorder = Recorder(RecorderConfig(folder, journal_interval_s=10.0),
                        EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="exc-1",
                                        control_pattern="iso", profile="excavator_20t"))
    recorder.start()
    camera = recorder.add_stream(camera_spec("side", 2, 2, 30, "test"))
    for _ in range(camera.spec.queue_capacity + 25):
        camera.put((now_ns(), 0, b"\xff\xd8"))
    return recorder.stop()


def test_a_finished_episodes_drops_are_named_per_stream(tmp_path) -> None:
    path = episode_with_drops(tmp_path)
    checked = check_episode(path)  # in a child process, as the soak reads it
    assert checked.drops == {"cameras/side": 25} and not checked.clean
    summary = summarize(path)
    assert summary.drop_events == 25 and summary.drops_by_stream == {"cameras/side": 25}
    assert "25 samples dropped in all (cameras/side 25)" in summary_text(summary)


def test_an_episode_with_drops_is_kept_for_inspection_and_named_in_the_log(tmp_path) -> None:
    """Episodes roll (--keep 1), but one with drops stays on disk and its line says where the drops were."""
    seen: list[Path] = []
    stop = threading.Event()

    def check(path: Path) -> EpisodeCheck:
        real = check_episode(path)
        seen.append(path)
        if len(seen) == 4:
            stop.set()  # the soak ends after this episode
        if len(seen) == 2:  # as if its camera had lost frames under load
            return EpisodeCheck({"cameras/front": 3}, real.problems)
        return real

    settings = SoakSettings(hours=1.0, episode_minutes=1.5 / 60, interval_s=1.0, cameras=1, width=160,
                            height=120, fps=15.0, keep=1, devices_open=True)
    episodes, log_path = tmp_path / "episodes", tmp_path / "soak.jsonl"
    episodes.mkdir()
    with open(log_path, "a") as log:
        summary = Soak(settings, episodes, log, echo=None, stop=stop, check=check).run()
    assert len(seen) == 4 and summary["episodes"] == 4
    assert summary["drops"] == 3 and summary["invalid_episodes"] == 0
    assert summary["kept_for_inspection"] == [seen[1].name]
    assert sorted(episodes.glob("*.h5")) == sorted([seen[1], seen[-1]])  # the one with drops and the last one
    lines = read_log(log_path)
    named = [line for line in lines if "at_s" in line]
    assert [line["file"] for line in named] == [path.name for path in seen]
    assert [line["drops"] for line in named] == [{}, {"cameras/front": 3}, {}, {}]
    rows = report(lines)["per_episode"]
    assert rows[1]["dropped"] == {"cameras/front": 3} and rows[0]["dropped"] == {}
    assert [s["drops"] for s in lines if "t_s" in s][-1] == 3


def soak_args(out: Path, hours_s: float) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "soak.py"), "--station", "--hours", str(hours_s / 3600),
            "--episode-minutes", str(3 / 60), "--interval", "0.5", "--cameras", "1", "--size", "160x120",
            "--fps", "15", "--keep", "5", "--out", str(out)]


def test_a_soak_killed_mid_episode_resumes_with_that_episode_recovered_and_counted(tmp_path) -> None:
    """The process of a soak dies (kill -9, as a machine that stops) while its second episode records; `--resume`
    recovers that episode from its journal, counts it, and goes on counting time and episodes from the log."""
    out = tmp_path / "soak"
    first = subprocess.Popen(soak_args(out, 14), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             cwd=REPO)

    def second_episode_journaled() -> bool:
        lines = soak_lines(out / "soak.jsonl")
        named = [line for line in lines if "at_s" in line]
        journals = list(out.glob("episodes/**/*.journal"))
        return (len(named) == 1 and bool(journals) and journals[0].stat().st_size > 4096
                and lines[-1].get("t_s", 0) > named[0]["at_s"] + 1.0)

    try:
        wait_for(second_episode_journaled, timeout=60, message="the second episode recording into its journal")
        first.kill()
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    before = soak_lines(out / "soak.jsonl")
    killed_at = [line["t_s"] for line in before if "t_s" in line][-1]
    assert not any("summary" in line for line in before)  # it never got to write one

    resumed = subprocess.run([*soak_args(out, 14), "--resume"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    lines = read_log(out / "soak.jsonl")
    mark = next(line for line in lines if "resumed_at_s" in line)
    assert mark["segment"] == 2 and mark["resumed_at_s"] == killed_at and len(mark["recovered"]) == 1
    named = [line for line in lines if "at_s" in line]
    assert [line["episode"] for line in named] == list(range(1, len(named) + 1)) and len(named) >= 3
    assert named[1].get("recovered") is True and named[1]["problems"] == 0 and named[1]["drops"] == {}
    assert validate_episode(out / "episodes" / named[1]["file"]) == []
    times = [line["t_s"] for line in lines if "t_s" in line]
    assert times == sorted(times) and times[-1] >= 14 - 1  # the time counts on from the log to the total
    summary = lines[-1]
    assert summary["summary"] == "soak" and summary["segments"] == 2 and summary["episodes"] == len(named)
    assert summary["drops"] == 0 and summary["invalid_episodes"] == 0
    shown = report(lines)
    assert shown["finished"] and shown["segments"] == 2 and shown["episodes_finished"] == len(named)
    assert {row["segment"] for row in shown["per_episode"]} == {1, 2}

    again = subprocess.run([*soak_args(out, 14), "--resume"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert again.returncode == 2 and "nothing to resume" in again.stderr.strip().splitlines()[-1]
    assert read_log(out / "soak.jsonl") == lines  # refused before it wrote anything


def test_resume_without_a_soak_to_continue_is_one_line(tmp_path) -> None:
    run = subprocess.run([*soak_args(tmp_path / "none", 14), "--resume"], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert run.returncode == 2
    assert run.stderr.strip() == f"excap: error: {tmp_path / 'none' / 'soak.jsonl'}: no soak log to resume (give the " \
                                 "--out of the soak to continue)"


class Killed(BaseException):
    """The end of a soak's process, as far as the soak can tell."""


def test_an_episode_finished_but_not_yet_checked_when_the_soak_ended_is_counted_when_it_resumes(tmp_path) -> None:
    """The check of a finished episode takes seconds; a soak that ends then (its process killed) has the episode on
    disk but not in its count: resumed, it checks and counts it before going on."""
    settings = SoakSettings(hours=1.0, episode_minutes=1.5 / 60, interval_s=0.5, cameras=1, width=160,
                            height=120, fps=15.0, keep=5, devices_open=True)
    episodes, log_path = tmp_path / "episodes", tmp_path / "soak.jsonl"
    episodes.mkdir()
    seen: list[Path] = []

    def dies_checking_the_second(path: Path) -> EpisodeCheck:
        seen.append(path)
        if len(seen) == 2:
            raise Killed  # the process ends while the second episode is being checked
        return check_episode(path)

    with open(log_path, "a") as log, pytest.raises(Killed):
        Soak(settings, episodes, log, echo=None, check=dies_checking_the_second).run()
    assert seen[1].is_file() and [line["file"] for line in read_log(log_path) if "at_s" in line] == [seen[0].name]

    stop = threading.Event()

    def stops_after_one_more(path: Path) -> EpisodeCheck:
        seen.append(path)
        if len(seen) == 4:
            stop.set()
        return check_episode(path)

    with open(log_path, "a") as log:
        soak = Soak(settings, episodes, log, echo=None, stop=stop, check=stops_after_one_more)
        soak.resume_from(progress(read_log(log_path), settings.hours))
        summary = soak.run()
    lines = read_log(log_path)
    mark = next(line for line in lines if "resumed_at_s" in line)
    assert mark["unchecked"] == [seen[1].name] and mark["recovered"] == []
    named = [line for line in lines if "at_s" in line]
    assert [line["file"] for line in named] == [seen[0].name, seen[1].name, seen[3].name]
    assert [line["episode"] for line in named] == [1, 2, 3] and summary["episodes"] == 3
    assert summary["segments"] == 2 and summary["drops"] == 0 and summary["invalid_episodes"] == 0
