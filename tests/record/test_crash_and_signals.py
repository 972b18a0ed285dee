"""Real recorder processes: SIGINT / SIGTERM finalize; kill -9 loses at most the journal interval and is recovered."""

import os
import signal
import subprocess
import time

import h5py
import pytest

from excap.episode.journal_reader import read_journal
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.crash_recorder import LOSS_BOUND_S
from tests.support.interrupted_import import interrupting_import_of
from tests.support.paths import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def start_recorder(out_dir, *extra, env=None):
    return subprocess.Popen(
        excap_command("record", "--sim", "--out", str(out_dir), "--cameras", "1", "--width", "320",
                      "--height", "240", "--quiet", *extra),
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def journal_rows(out_dir, stream):
    journals = list((out_dir / ".recording").glob("*.journal"))
    if not journals:
        return 0
    _, batches = read_journal(journals[0])  # a live journal: its last record may be cut short
    return sum(len(b["t_ns"]) for spec, b in batches if spec.path == stream)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_finalizes_the_episode(tmp_path, signum):
    process = start_recorder(tmp_path)
    wait_for(lambda: journal_rows(tmp_path, "joystick/operator") > 100, message="recording to start")
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    episode = tmp_path / stdout.strip().splitlines()[-1].split("/")[-1]
    assert episode.exists() and validate_episode(episode) == []
    with h5py.File(episode, "r") as f:
        assert not f.attrs["recovered"]
        assert f["joystick/operator/t_ns"].shape[0] > 100
    assert not list((tmp_path / ".recording").glob("*"))


def test_a_signal_while_the_libraries_load_still_stops_the_recording(tmp_path):
    """Ctrl-C at the moment the recording session's modules start to import, inside a library that swallows the
    KeyboardInterrupt (as some do around optional imports): the command still stops, before recording anything."""
    marker = tmp_path / "interrupted"
    process = start_recorder(tmp_path / "out", env=interrupting_import_of("excap.station.session", marker))
    _, stderr = process.communicate(timeout=60)  # without the stop request it would record until killed
    assert marker.read_text() == "excap.station.session"
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "excap: stopped before the episode started: nothing recorded"
    assert not list((tmp_path / "out").glob("*.h5")) and not list((tmp_path / "out").glob(".recording/*"))


def test_kill_9_loses_at_most_the_journal_interval_and_is_recovered(tmp_path):
    process = start_recorder(tmp_path)
    wait_for(lambda: journal_rows(tmp_path, "joystick/operator") > 300, message="3 s of joystick rows")
    killed_at_ns = time.monotonic_ns()
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert list(tmp_path.glob("*.h5")) == []
    result = subprocess.run(excap_command("recover", str(tmp_path)), capture_output=True, text=True, cwd=REPO,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    episodes = list(tmp_path.glob("*.h5"))
    assert len(episodes) == 1
    assert validate_episode(episodes[0]) == []
    with h5py.File(episodes[0], "r") as f:
        assert f.attrs["recovered"]
        assert f.attrs["outcome"] == "aborted"
        last_joystick = int(f["joystick/operator/t_ns"][-1])
        assert (killed_at_ns - last_joystick) / 1e9 <= LOSS_BOUND_S
        assert f["cameras/side/frames"].shape[0] > 10
        assert b"recovered" in list(f["events/kind"][()])
    assert not list((tmp_path / ".recording").glob("*.journal"))


def test_next_record_recovers_what_a_crash_left(tmp_path):
    process = start_recorder(tmp_path)
    wait_for(lambda: journal_rows(tmp_path, "control") > 50, message="control rows")
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    result = subprocess.run(excap_command("record", "--sim", "--duration", "1", "--out", str(tmp_path),
                                          "--cameras", "0", "--quiet"),
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "recovered" in result.stderr
    episodes = sorted(tmp_path.glob("*.h5"))
    assert len(episodes) == 2
    flags = []
    for episode in episodes:
        assert validate_episode(episode) == []
        with h5py.File(episode, "r") as f:
            flags.append(bool(f.attrs["recovered"]))
    assert sorted(flags) == [False, True]
