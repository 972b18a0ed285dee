"""Quality warnings beyond cameras: a CAN channel or periodic joystick silent for most of the episode, and every
fault event, listed apart from schema errors (validate exits 0)."""

import json
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from excap.episode.quality import file_warnings
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO


@pytest.fixture
def episode_copy(sim_episode, tmp_path):
    copy = tmp_path / sim_episode.name
    shutil.copy(sim_episode, copy)
    return copy


def keep_first_rows(group: h5py.Group, share: float) -> None:
    """Keep the rows of a stream's first `share` of the episode (every dataset rewritten, attributes kept)."""
    t_ns = group["t_ns"][()]
    start, end = int(group.file.attrs["start_t_ns"]), int(group.file.attrs["end_t_ns"])
    rows = int((t_ns < start + share * (end - start)).sum())
    for name in [n for n in group if isinstance(group[n], h5py.Dataset)]:
        data, attrs = group[name][:rows], dict(group[name].attrs)
        del group[name]
        kept = group.create_dataset(name, data=data, maxshape=(None, *data.shape[1:]))
        kept.attrs.update(attrs)


def add_event(handle: h5py.File, t_ns: int, kind: str, **detail: object) -> None:
    events = handle["events"]
    rows = events["t_ns"].shape[0]
    for name, value in (("t_ns", t_ns), ("kind", kind), ("detail", json.dumps(detail))):
        events[name].resize((rows + 1,))
        events[name][rows] = value


def test_silent_can_and_joystick_streams_and_faults_are_warnings(episode_copy):
    with h5py.File(episode_copy, "r+") as f:
        keep_first_rows(f["can/can0"], 0.3)
        keep_first_rows(f["joystick/operator"], 0.3)
        start = int(f.attrs["start_t_ns"])
        add_event(f, start + 1_200_000_000, "fault", device="can/can0", problem="silent", source="watch")
        add_event(f, start + 2_000_000_000, "fault_cleared", device="can/can0", problem="silent", after_s=0.8)
        add_event(f, start + 3_000_000_000, "fault", device="camera/side", problem="disconnected", source="watch")
    assert validate_episode(episode_copy) == []
    warnings = file_warnings(episode_copy)
    for stream, unit in (("/can/can0", "frames"), ("/joystick/operator", "samples")):
        assert any(w.startswith(f"{stream}: ") and f" {unit} in 4." in w and "silent for 2." in w
                   for w in warnings), warnings
    assert "fault at 1.2 s: can/can0: silent, cleared after 0.8 s" in warnings
    assert "fault at 3.0 s: camera/side: disconnected" in warnings
    result = subprocess.run(excap_command("validate", str(episode_copy)), capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"{episode_copy}: valid" and len(lines) == 1 + len(warnings)
    assert all(line.startswith(f"{episode_copy}: WARNING: ") for line in lines[1:])


def test_a_stream_that_delivers_throughout_is_no_warning(episode_copy):
    with h5py.File(episode_copy, "r+") as f:
        keep_first_rows(f["can/can0"], 0.9)  # silent only for the last 0.4 s
        assert int(np.diff(f["can/can0/t_ns"][()]).max()) < 1_000_000_000
    assert file_warnings(episode_copy) == []
