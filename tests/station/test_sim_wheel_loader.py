"""`excap record --sim --profile wheel_loader_20t` end to end through the command line: a valid wheel loader
episode with the loader's commands, CAN signals and moving cameras; a simulator thread that dies is a fault, never a
clean episode."""

import json
import subprocess
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import yaml

from excap.drivers.machine.profiles import load_profile
from tests.support.commands import excap_command

SMALL = ("--duration", "2", "--cameras", "2", "--width", "160", "--height", "120", "--fps", "10", "--quiet")
LOADER_SIGNALS = {"EEC1", "ETC2", "CCVS1", "EBC1", "LoaderArticulation", "LoaderLinkage", "LoaderPressures",
                  "LoaderPayload", "LoaderTravel"}


def record(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command("record", "--sim", "--out", str(out), *SMALL, *args), capture_output=True,
                          text=True, timeout=120)


def changed_pixels(first: np.ndarray, last: np.ndarray) -> float:
    """Share of pixels below the caption that changed by more than sensor noise and JPEG can explain."""
    return float((np.abs(first[30:].astype(int) - last[30:].astype(int)).max(axis=2) > 40).mean())


@pytest.mark.parametrize("pattern", [None, "two_lever"])
def test_record_sim_writes_a_valid_wheel_loader_episode(tmp_path, pattern):
    result = record(tmp_path, "--profile", "wheel_loader_20t", *(("--pattern", pattern) if pattern else ()))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    validate = subprocess.run(excap_command("validate", str(path)), capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0 and "WARNING" not in validate.stdout + validate.stderr, validate.stdout
    with h5py.File(path) as f:
        assert f.attrs["machine_kind"] == "wheel_loader" and f.attrs["profile"] == "wheel_loader_20t"
        assert f.attrs["control_pattern"] == (pattern or "single_lever")
        assert f.attrs["machine_id"] == "sim-wheel-loader-01" and f.attrs["task"] == "load-and-carry"
        names = [str(n) for n in f["control/commands"].attrs["names"]]
        assert names == ["lift", "tilt", "steer", "throttle", "brake", "direction"]
        commands = f["control/commands"][()]
        enabled = f["control/enabled"][()]
        assert enabled.any() and commands[enabled][:, names.index("throttle")].max() > 0.5
        assert commands[enabled][:, names.index("direction")].max() == 1.0  # forward selected
        decoded = set(f["can/can0/decoded"])
        assert decoded >= LOADER_SIGNALS and "BJM1" in decoded
        rpm = f["can/can0/decoded/EEC1/EngSpeed"][()]
        assert rpm.min() > 600 and rpm.max() > 1200  # the pedal revs the engine up
        speed = f["can/can0/decoded/LoaderTravel/GroundSpeed"][()]
        assert speed.max() > 0.3
        events = [(str(k), json.loads(d)) for k, d in zip(f["events/kind"][()].astype(str),
                                                           f["events/detail"][()].astype(str), strict=True)]
        phases = [d["phase"] for k, d in events if k == "operator_phase"]
        assert phases[:2] == ["idle", "return_empty"] and not [k for k, _ in events if k == "fault"]
        assert set(f["cameras"]) == {"front", "rear"}
        for camera in ("front", "rear"):
            frames = f[f"cameras/{camera}/frames"]
            first, last = (cv2.imdecode(frames[i], cv2.IMREAD_COLOR) for i in (0, len(frames) - 1))
            assert first.shape == (120, 160, 3) and changed_pixels(first, last) > 0.01, camera


def test_record_sim_refuses_a_pattern_the_loader_profile_does_not_have(tmp_path):
    result = record(tmp_path, "--profile", "wheel_loader_20t", "--pattern", "iso")
    assert result.returncode == 2 and not list(tmp_path.glob("*.h5"))
    assert result.stderr.strip().splitlines()[-1].endswith(
        "profile wheel_loader_20t has no pattern 'iso' (has: single_lever, two_lever)")
    assert result.stderr.strip().splitlines()[-1].startswith("excap: error: ")


def test_a_simulator_thread_that_dies_is_a_fault_and_the_command_fails(tmp_path):
    """A loader profile that names only the joystick DBC: the simulated machine cannot produce its messages, its
    thread dies at the first one. The episode keeps a `fault` event, validate warns, and record exits 2."""
    profile = yaml.safe_load(load_profile("wheel_loader_20t").source.read_text())
    profile["dbc"] = ["can/j1939_joysticks.dbc"]
    broken = tmp_path / "loader_joysticks_only.yaml"
    broken.write_text(yaml.safe_dump(profile))
    out = tmp_path / "episodes"
    result = record(out, "--profile", str(broken))
    assert result.returncode == 2
    assert "excap: error: device failed while recording: machine (KeyError: 'EJM1')" in result.stderr
    path = Path(result.stdout.strip())
    with h5py.File(path) as f:
        kinds = list(f["events/kind"][()].astype(str))
        details = [json.loads(d) for d in f["events/detail"][()].astype(str)]
        assert f.attrs["outcome"] != "success"
    faults = [d for k, d in zip(kinds, details, strict=True) if k == "fault"]
    assert faults and faults[0]["device"] == "machine" and faults[0]["error"] == "KeyError: 'EJM1'"
    validate = subprocess.run(excap_command("validate", str(path)), capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0  # well formed, but not clean:
    said = validate.stdout + validate.stderr
    assert "WARNING: fault " in said and ": machine: KeyError" in said  # at N s, or before the start
    assert "KeyError: 'EJM1'" in validate.stdout + validate.stderr
