"""`excap record --sim` runs the registry check of a real station: the episode's `certification` and its
`certification` event come from the operator registry, under the policy `--certification-policy` selects."""

import json
import subprocess
from pathlib import Path

import h5py
import pytest

from tests.support.commands import excap_command
from tests.support.paths import REPO
from tests.support.station import certify

SHORT = ("--duration", "0.4", "--cameras", "0", "--quiet")


def record_sim(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command("record", "--sim", "--out", str(out), *SHORT, *args), capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def certification_of(path: Path) -> tuple[str, list[dict[str, str]]]:
    with h5py.File(path, "r") as f:
        kinds = [k.decode() for k in f["events/kind"][()]]
        details = [json.loads(d) for d in f["events/detail"][()]]
        return str(f.attrs["certification"]), [d for k, d in zip(kinds, details, strict=True)
                                               if k == "certification"]


def test_a_certified_operator_is_recorded_as_certified_whatever_free_text_is_given(tmp_path):
    certify(tmp_path, "op-7")
    result = record_sim(tmp_path, "--operator", "op-7", "--certification", "FORGED-123",
                        "--certification-policy", "refuse")
    assert result.returncode == 0, result.stderr
    assert "--certification is ignored" in result.stderr
    value, events = certification_of(Path(result.stdout.strip().splitlines()[-1]))
    assert value.startswith("cpcs-a59 #op-7-cert") and "FORGED" not in value
    assert [e["state"] for e in events] == ["certified"] and events[0]["certification"] == value


def test_refuse_records_nothing_and_says_why_in_one_line(tmp_path):
    certify(tmp_path, "op-7")
    result = record_sim(tmp_path, "--operator", "op-8", "--certification-policy", "refuse")
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines == ["excap: error: not recording: operator 'op-8' is not in the operator registry (policy refuse)"]
    assert list(tmp_path.glob("*.h5")) == []


@pytest.mark.parametrize("policy", [None, "mark", "mark_uncertified"])
def test_mark_records_the_episode_marked_uncertified(tmp_path, policy):
    """mark is the simulator's default, and mark_uncertified its accepted alias."""
    result = record_sim(tmp_path, "--operator", "op-9", "--certification", "A59-999",
                        *(("--certification-policy", policy) if policy else ()))
    assert result.returncode == 0, result.stderr
    value, events = certification_of(Path(result.stdout.strip().splitlines()[-1]))
    assert value == "UNCERTIFIED: operator 'op-9' is not in the operator registry"
    assert [(e["state"], e["certification"]) for e in events] == [("missing", value)]


def test_an_unknown_policy_is_one_line(tmp_path):
    result = record_sim(tmp_path, "--certification-policy", "sometimes")
    assert result.returncode == 2 and "--certification-policy: invalid choice: 'sometimes'" in result.stderr
    assert list(tmp_path.glob("*.h5")) == []
