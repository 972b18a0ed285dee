"""A full disk on a real (tmpfs) file system: recordings stop cleanly before it is full, nothing is lost.

Mounting needs root; CI runs as root, so there these tests always run.
"""

import json
import os
import resource
import signal
import subprocess
import time

import h5py
import pytest

from excap.core.clock import now_ns
from excap.episode.journal_reader import scan_journal
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec, control_spec
from excap.episode.validation import validate_episode
from excap.record.disk_space import RESERVE_ENV, free_bytes
from excap.record.switch import EpisodeSwitch
from tests.support.commands import excap_command
from tests.support.jpeg import jpeg_frame
from tests.support.paths import REPO
from tests.support.report import record
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 30 MB tmpfs mounted for the test, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def excap(*args, reserve_mb=None, timeout=120):
    env = dict(os.environ)
    env.pop(RESERVE_ENV, None)
    if reserve_mb is not None:
        env[RESERVE_ENV] = str(reserve_mb)
    return subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=timeout, env=env)


def fault_events(episode):
    with h5py.File(episode, "r") as f:
        return [json.loads(d) for k, d in zip(f["events/kind"][()], f["events/detail"][()], strict=True)
                if k == b"fault"]


def test_a_recording_that_fills_the_disk_stops_cleanly_with_a_valid_episode(small_disk):
    out = small_disk / "episodes"
    started = time.monotonic()
    result = excap("record", "--sim", "--out", str(out), "--cameras", "2", "--duration", "120", "--quiet",
                   reserve_mb=8)
    assert time.monotonic() - started < 60  # stopped by the disk, not by the duration
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("excap: error:")]
    assert len(error_lines) == 1 and "disk nearly full" in error_lines[0]
    [episode] = out.glob("*.h5")
    assert result.stdout.strip() == str(episode)
    assert validate_episode(episode) == []
    [fault] = fault_events(episode)
    assert fault["reason"] == "disk_full" and fault["reserve_bytes"] == 8_000_000
    assert fault["free_bytes"] - fault["pending_bytes"] <= fault["reserve_bytes"] < fault["free_bytes"]
    with h5py.File(episode, "r") as f:
        assert f["cameras/side/t_ns"].shape[0] > 10 and not f.attrs["recovered"]
    assert list((out / ".recording").iterdir()) == []  # the journal went only once the episode was in place


def test_a_recording_does_not_start_below_the_reserve(small_disk):
    result = excap("record", "--sim", "--out", str(small_disk), "--cameras", "0", "--duration", "1", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("excap: error: ")
    assert "disk reserve" in result.stderr and "Traceback" not in result.stderr
    assert list(small_disk.glob("*.h5")) == []


def test_a_failed_write_keeps_the_journal_and_recover_refuses_on_a_full_disk(small_disk):
    out = small_disk / "episodes"
    process = subprocess.Popen(
        excap_command("record", "--sim", "--out", str(out), "--cameras", "2", "--duration", "120", "--quiet"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != RESERVE_ENV} | {RESERVE_ENV: "4"})
    recording = out / ".recording"
    wait_for(lambda: [j for j in recording.glob("*.journal") if j.stat().st_size > 2_000_000], message="recording")
    [journal] = recording.glob("*.journal")
    [partial] = recording.glob("*.h5.partial")
    # Just after an HDF5 write, lower the running recorder's file size limit to 0.5 MB above its files:
    # its next writes fail with EFBIG, as an I/O error would. Mostly the journal's write (every 0.25 s)
    # fails first and the recorder stops with one line; when HDF5's own write fails first, HDF5 crashes
    # the process (SIGSEGV), which the journal survives like kill -9. Either way nothing captured is lost.
    size = partial.stat().st_size
    wait_for(lambda: partial.stat().st_size != size, interval=0.005, message="an HDF5 write")
    limit = max(journal.stat().st_size, partial.stat().st_size) + 500_000
    resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (limit, limit))
    _, stderr = process.communicate(timeout=60)
    assert process.returncode in (2, -signal.SIGSEGV), (process.returncode, stderr[-2000:])
    record("disk full", "write failure: clean stop / crash inside HDF5",
           "clean stop" if process.returncode == 2 else "crash inside HDF5")
    if process.returncode == 2:
        [line] = [line for line in stderr.splitlines() if line.startswith("excap: error:")]
        assert "recording stopped (write failed: File too large)" in line and "captured data is kept in" in line
        assert list((out / ".recording").glob("*.h5.partial")) == []
    assert list(out.glob("*.h5")) == []
    assert sum(scan_journal(journal).rows.values()) > 100

    filler = small_disk / "filler"
    with open(filler, "wb") as handle:  # leave about 4 MB free: too little to rebuild the episode
        handle.truncate(0)
        os.posix_fallocate(handle.fileno(), 0, free_bytes(small_disk) - 4_000_000)
    size = journal.stat().st_size
    refused = excap("recover", str(out))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.count("\n") == 1 and "not enough free disk space" in refused.stderr
    assert journal.stat().st_size == size and list(out.glob("*.h5")) == []

    filler.unlink()
    recovered = excap("recover", str(out))
    assert recovered.returncode == 0, recovered.stderr
    [episode] = out.glob("*.h5")
    assert validate_episode(episode) == []
    with h5py.File(episode, "r") as f:
        assert f.attrs["recovered"] and f["cameras/side/t_ns"].shape[0] > 10
        assert sum(f[f"{path}/t_ns"].shape[0] for path in ("control", "events", "cameras/side")) > 0
    assert not journal.exists()


def test_a_station_episode_stops_by_itself_when_the_disk_fills(small_disk, monkeypatch):
    monkeypatch.setenv(RESERVE_ENV, "8")
    switch = EpisodeSwitch(small_disk)
    events = []
    switch.on_event.append(lambda kind, t_ns, detail: events.append((kind, detail)))
    control = switch.stream(control_spec(["boom"]))
    camera = switch.stream(camera_spec("side", 640, 480, 30, "test"))
    switch.start(EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="exc-1",
                                 control_pattern="iso", profile="excavator_20t"))
    frame = jpeg_frame(1, 320, 240)  # about 70 kB of noise

    def fill() -> bool:
        camera.put((now_ns(), 0, frame))
        control.put((now_ns(), [0.0], True))
        return switch.last is not None

    wait_for(fill, timeout=60, interval=0.01, message="the episode to stop on a full disk")
    assert "disk nearly full" in switch.last.fault and not switch.recording
    assert validate_episode(switch.last.path) == []
    assert [d["reason"] for d in fault_events(switch.last.path)] == ["disk_full"]
    assert ("fault", {"reason": "recording_stopped", "message": switch.last.fault}) in events
