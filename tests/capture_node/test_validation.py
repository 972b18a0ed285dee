import shutil
import subprocess

import h5py
import numpy as np
import pytest

from capture_node.validation import validate_episode
from tests.conftest import REPO, excap_command


@pytest.fixture
def episode_copy(sim_episode, tmp_path):
    copy = tmp_path / sim_episode.name
    shutil.copy(sim_episode, copy)
    return copy


def test_good_episode_is_valid_from_the_command_line(sim_episode):
    result = subprocess.run(excap_command("validate", str(sim_episode)), capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": valid")


def corrupt_missing_attribute(f):
    del f.attrs["operator_id"]


def corrupt_bad_outcome(f):
    f.attrs["outcome"] = "maybe"


def corrupt_length_mismatch(f):
    f["control/enabled"].resize((f["control/enabled"].shape[0] - 3,))


def corrupt_dtype(f):
    data = f["control/t_ns"][()]
    del f["control/t_ns"]
    f["control/t_ns"] = data.astype(np.float64)


def corrupt_time_backwards(f):
    t = f["joystick/operator/t_ns"]
    t[10] = t[5]
    t[11] = t[4]


def corrupt_missing_stream(f):
    del f["events"]


def corrupt_frame(f):
    f["cameras/side/frames"][0] = np.frombuffer(b"not a jpeg", np.uint8)


def corrupt_extra_dataset(f):
    f["control/surprise"] = np.zeros(3)


@pytest.mark.parametrize("corrupt,message", [
    (corrupt_missing_attribute, "root attribute 'operator_id' is missing"),
    (corrupt_bad_outcome, "root attribute 'outcome' is 'maybe', not one of"),
    (corrupt_length_mismatch, "/control: datasets differ in length"),
    (corrupt_dtype, "/control/t_ns: dtype float64 should be int64"),
    (corrupt_time_backwards, "/joystick/operator/t_ns: goes backwards"),
    (corrupt_missing_stream, "required stream /events is missing"),
    (corrupt_frame, "/cameras/side/frames[0]: not a JPEG image"),
    (corrupt_extra_dataset, "/control/surprise: dataset not defined by the schema"),
])
def test_corruptions_are_reported_one_line_each(episode_copy, corrupt, message):
    with h5py.File(episode_copy, "r+") as f:
        corrupt(f)
    problems = validate_episode(episode_copy)
    assert any(message in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_non_hdf5_foreign_hdf5_and_truncated_files(tmp_path, sim_episode):
    text = tmp_path / "notes.h5"
    text.write_text("hello")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(5)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(sim_episode.read_bytes()[: sim_episode.stat().st_size // 2])
    assert validate_episode(text) == [f"{text}: not an HDF5 file"]
    assert "not an excap episode (foreign HDF5 file" in validate_episode(foreign)[0]
    assert len(validate_episode(truncated)) >= 1
    result = subprocess.run(excap_command("validate", str(text), str(foreign), str(truncated), str(sim_episode)),
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"{text}: not an HDF5 file"
    assert lines[-1] == f"{sim_episode}: valid"
    assert "Traceback" not in result.stderr


def test_inspect_reports_streams_and_json(sim_episode):
    result = subprocess.run(excap_command("inspect", str(sim_episode), "--json"), capture_output=True, text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    import json

    summary = json.loads(result.stdout)
    streams = {s["stream"]: s for s in summary["streams"]}
    assert streams["joystick/operator"]["rate_hz"] == pytest.approx(100, rel=0.1)
    assert summary["metadata"]["machine_kind"] == "excavator"
    text = subprocess.run(excap_command("inspect", str(sim_episode)), capture_output=True, text=True, cwd=REPO)
    assert "cameras/side" in text.stdout and "rate Hz" in text.stdout
    bad = subprocess.run(excap_command("inspect", str(REPO / "README.md")), capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.strip() == f"excap: error: {REPO / 'README.md'}: not an HDF5 file"
