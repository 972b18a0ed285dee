import shutil
import subprocess

import h5py
import numpy as np
import pytest

from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO


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


def _keep_frames(group, keep):
    """Keep the rows `keep` of every dataset of a camera group (rewritten, attributes kept)."""
    for name in list(group):
        data, attrs = group[name][()], dict(group[name].attrs)
        dtype = group[name].dtype
        del group[name]
        if name == "frames":
            kept = group.create_dataset(name, (len(keep),), dtype=dtype, maxshape=(None,))
            for row, index in enumerate(keep):
                kept[row] = data[index]
        else:
            kept = group.create_dataset(name, data=data[keep], maxshape=(None,))
        kept.attrs.update(attrs)


def test_dead_and_slow_cameras_are_warnings_not_errors(episode_copy):
    with h5py.File(episode_copy, "r+") as f:
        _keep_frames(f["cameras/side"], np.arange(0))  # a camera that delivered nothing
        _keep_frames(f["cameras/top"], np.arange(0, f["cameras/top/t_ns"].shape[0], 4))  # a quarter of its rate
    assert validate_episode(episode_copy) == []
    result = subprocess.run(excap_command("validate", str(episode_copy)), capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"{episode_copy}: valid"
    assert any(line.startswith(f"{episode_copy}: WARNING: /cameras/side: no samples") and "nominal 15 fps" in line
               for line in lines), lines
    assert any(line.startswith(f"{episode_copy}: WARNING: /cameras/top: ") and "of its nominal 15 fps" in line
               for line in lines), lines
    text = subprocess.run(excap_command("inspect", str(episode_copy)), capture_output=True, text=True, cwd=REPO)
    assert text.returncode == 0 and "WARNING   /cameras/side: no samples" in text.stdout
    import json

    data = json.loads(subprocess.run(excap_command("inspect", "--json", str(episode_copy)), capture_output=True,
                                     text=True, cwd=REPO).stdout)
    assert len(data["warnings"]) == 2


def test_a_good_episode_has_no_warnings(sim_episode):
    from excap.episode.quality import file_warnings

    assert file_warnings(sim_episode) == []


def test_structure_the_readers_refuse_is_reported(episode_copy):
    """What EpisodeReader refuses at open, validate lists (the same check), one line each."""
    with h5py.File(episode_copy, "r+") as f:
        f["cameras/side"].attrs["width"] = 10**9
        f["control/commands"].attrs["names"] = np.array(["boom", "arm"], dtype=object)
        f["joystick/operator/extra"] = h5py.SoftLink("/nowhere")
        f.attrs["duration_s"] = np.nan
    problems = validate_episode(episode_copy)
    for message in ("/cameras/side: attribute 'width' is 1000000000, not a size in pixels",  # readers ignore it
                    "/control/commands: 2 names for 6 columns", "/joystick/operator/extra: is a soft link",
                    "root attribute 'duration_s' is nan, not a finite number"):
        assert any(message in p for p in problems), (message, problems)
    from excap.core.errors import EpisodeError
    from excap.episode.reader import EpisodeReader

    with pytest.raises(EpisodeError, match="2 more problems: excap validate lists them") as caught:
        EpisodeReader(episode_copy)
    assert str(caught.value).startswith(f"{episode_copy}: ") and "\n" not in str(caught.value)
