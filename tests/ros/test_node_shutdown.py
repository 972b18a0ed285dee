# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""`excap node --sim` as a real process: Ctrl-C (SIGINT) or SIGTERM while an episode records finishes that episode
under its final name; a node killed with SIGKILL leaves a journal that the next node start recovers."""

import json
import signal
import subprocess
from pathlib import Path

import h5py
import pytest

from excap.episode.validation import validate_episode
from tests.support.requirements import require_ros
from tests.support.waiting import wait_for

require_ros()  # before rclpy is imported: skips the module, or fails it in CI

from std_msgs.msg import String

from tests.support.interrupted_import import interrupting_import_of
from tests.support.ros_node import LATCHED, TIMEOUT, Client, finish, spawn

pytestmark = pytest.mark.slow
SIM_NODE = ("-m", "excap", "node", "--sim", "--ros-args", "-p", "cameras:=1", "-p", "width:=160",
            "-p", "height:=120", "-p", "fps:=10.0")
JOURNAL_BYTES = 100_000  # about a second of this simulated station's data


def journals(out: Path) -> list[Path]:
    return sorted((out / ".recording").glob("*.journal"))


def journal_has_data(out: Path) -> bool:
    return any(j.stat().st_size > JOURNAL_BYTES for j in journals(out))


def events(path: Path) -> list[tuple[str, dict]]:
    with h5py.File(path, "r") as f:
        kinds = f["events/kind"].asstr()[()]
        details = [json.loads(d) for d in f["events/detail"].asstr()[()]]
    return list(zip(kinds, details, strict=True))


def node_process(out: Path, *extra: str) -> subprocess.Popen[str]:
    return spawn(*SIM_NODE[:4], "--out", str(out), *extra, *SIM_NODE[4:])


@pytest.mark.parametrize(("signum", "label", "outcome"), [(signal.SIGINT, None, "unlabeled"),
                                                           (signal.SIGTERM, "mark_success", "success")],
                         ids=["sigint", "sigterm"])
def test_signal_finishes_the_running_episode(tmp_path: Path, client: Client, signum: signal.Signals,
                                             label: str | None, outcome: str) -> None:
    node = node_process(tmp_path)
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        started = Path(client.call("start"))
        if label:
            client.call(label)
            wait_for(lambda: client.state().get("outcome") == outcome, TIMEOUT, message="labelled state")
        wait_for(lambda: journal_has_data(tmp_path), TIMEOUT, message="a second of recorded data")
        assert not started.exists()  # still recording: only the journal and the partial file exist
        node.send_signal(signum)
        output, _ = node.communicate(timeout=TIMEOUT)
    finally:
        finish(node)
    assert node.returncode == 0, output
    assert "Traceback" not in output, output
    assert str(started) in output.splitlines()  # the node prints the finished episode's path
    assert started.is_file() and validate_episode(started) == []
    assert sorted(tmp_path.glob("*.h5")) == [started]
    assert list((tmp_path / ".recording").iterdir()) == []  # no journal, no partial file left
    with h5py.File(started, "r") as f:
        assert f.attrs["outcome"] == outcome and not f.attrs["recovered"]
        assert f.attrs["duration_s"] > 0.5
        for stream in ("joystick/operator", "control", "cameras/side", "can/can0"):
            assert len(f[stream]["t_ns"]) > 2, stream  # a second of data, cameras at 10 fps or less under load
    recorded = events(started)
    assert recorded[0][0] == "start"
    assert recorded[-1] == ("stop", {"reason": "shutdown"})


def test_recording_of_a_killed_node_is_recovered_when_the_node_starts(tmp_path: Path, client: Client) -> None:
    killed = node_process(tmp_path, "--start")
    try:
        wait_for(lambda: journal_has_data(tmp_path), TIMEOUT, message="a second of recorded data")
        (journal,) = journals(tmp_path)
        killed.kill()
        killed.wait(TIMEOUT)
    finally:
        finish(killed)
    assert journal.exists() and not list(tmp_path.glob("*.h5"))
    episode = tmp_path / f"{journal.stem}.h5"

    node = node_process(tmp_path)
    try:
        client.subscribe(String, "/excap_recorder/state", LATCHED)
        wait_for(lambda: client.state().get("recording") is False, TIMEOUT, message="the restarted node")
        assert episode.is_file()  # recovered before the node reports itself ready
        assert not journal.exists()
    finally:
        output = finish(node)
    assert node.returncode == 0, output
    assert "Traceback" not in output, output
    assert f"{episode}: recovered: " in output
    assert validate_episode(episode) == []
    assert sorted(tmp_path.glob("*.h5")) == [episode]  # nothing was recording when the node stopped
    with h5py.File(episode, "r") as f:
        assert f.attrs["recovered"] and f.attrs["outcome"] == "aborted"
        assert len(f["control/t_ns"]) > 20 and len(f["can/can0/t_ns"]) > 100
    kinds = [kind for kind, _ in events(episode)]
    assert kinds[0] == "start" and "recovered" in kinds and "stop" not in kinds


@pytest.mark.parametrize("moment", ["journal created", "first data journaled"])
def test_a_signal_while_the_node_starts_its_first_episode_ends_it_cleanly(tmp_path: Path, moment: str) -> None:
    """Ctrl-C while the node (`--start`) is still starting, at the moment its first episode's journal appears or
    first holds data: it exits 0 without a traceback, with a finished episode and no journal left to recover."""
    node = node_process(tmp_path, "--start")
    try:
        if moment == "journal created":
            wait_for(lambda: journals(tmp_path) if (tmp_path / ".recording").exists() else [], TIMEOUT,
                     message="the first journal")
        else:
            wait_for(lambda: (tmp_path / ".recording").exists() and journal_has_data(tmp_path), TIMEOUT,
                     message="journaled data")
        node.send_signal(signal.SIGINT)
        output, _ = node.communicate(timeout=TIMEOUT)
    finally:
        finish(node)
    assert node.returncode == 0, output
    assert "Traceback" not in output, output
    assert journals(tmp_path) == []  # the episode that started was finished, not left to recovery
    (episode,) = tmp_path.glob("*.h5")
    assert str(episode) in output.splitlines() and validate_episode(episode) == []


def test_a_signal_while_the_ros_libraries_load_stops_the_node(tmp_path: Path) -> None:
    """Ctrl-C at the moment rclpy starts to import, inside a library that swallows the KeyboardInterrupt (as some
    do around optional imports): the node still stops, before it starts anything, instead of running on."""
    marker = tmp_path / "interrupted"
    node = spawn(*SIM_NODE[:4], "--out", str(tmp_path / "episodes"), "--start", *SIM_NODE[4:],
                 env=interrupting_import_of("rclpy", marker))
    try:
        output, _ = node.communicate(timeout=TIMEOUT)
    finally:
        finish(node)
    assert marker.read_text() == "rclpy"  # the signal was sent while rclpy loaded
    assert node.returncode == 130, output
    assert "Traceback" not in output, output
    assert not list(tmp_path.glob("episodes/**/*.h5")) and not list(tmp_path.glob("episodes/.recording/*"))
