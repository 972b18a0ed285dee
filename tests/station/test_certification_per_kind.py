"""Certification per machine kind, through the simulated station of each kind: an operator certified only for
excavators is refused on a wheel loader (policy refuse) or recorded marked uncertified (policy mark_uncertified),
and the reverse; an operator certified for the machine's kind is recorded as certified."""

from pathlib import Path

import h5py
import pytest

from excap.people.admin import MACHINE_KINDS
from excap.schemas.machine_kinds import MACHINE_KINDS as KIND_REGISTRY
from excap.station.certification import CertificationRefused
from excap.station.sim import SimSessionOptions, run_sim_session
from tests.support.station import certify

PROFILES = {"excavator": "excavator_20t", "wheel_loader": "wheel_loader_20t"}
OTHER = {"excavator": "wheel_loader", "wheel_loader": "excavator"}
SHORT = {"duration_s": 0.3, "cameras": 0}


def record(out: Path, kind: str, operator: str, policy: str) -> Path:
    return run_sim_session(SimSessionOptions(out_dir=out, profile=PROFILES[kind], operator_id=operator,
                                             certification_policy=policy, **SHORT))  # type: ignore[arg-type]


def events_of(path: Path, kind: str) -> list[str]:
    with h5py.File(path, "r") as f:
        kinds = f["events/kind"][()].astype(str)
        details = f["events/detail"][()].astype(str)
    return [d for k, d in zip(kinds, details, strict=True) if k == kind]


@pytest.mark.parametrize("machine", ["wheel_loader", "excavator"])
def test_an_operator_certified_for_the_other_kind_only_is_refused(tmp_path: Path, machine: str) -> None:
    certify(tmp_path, "op-other", (OTHER[machine],))
    with pytest.raises(CertificationRefused, match=rf"not recording: not certified for {machine} \(certified for "
                                                   rf"{OTHER[machine]} only\) \(policy refuse\)"):
        record(tmp_path, machine, "op-other", "refuse")
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("machine", ["wheel_loader", "excavator"])
def test_an_operator_certified_for_the_other_kind_only_is_marked_uncertified(tmp_path: Path, machine: str) -> None:
    certify(tmp_path, "op-other", (OTHER[machine],))
    path = record(tmp_path, machine, "op-other", "mark_uncertified")
    with h5py.File(path, "r") as f:
        assert f.attrs["machine_kind"] == machine and f.attrs["operator_id"] == "op-other"
        assert f.attrs["certification"] == (f"UNCERTIFIED: not certified for {machine} "
                                            f"(certified for {OTHER[machine]} only)")
    (event,) = events_of(path, "certification")
    assert '"state": "wrong_machine_kind"' in event


@pytest.mark.parametrize("policy", ["refuse", "mark_uncertified"])
def test_an_operator_certified_for_the_machines_kind_is_recorded_certified(tmp_path: Path, policy: str) -> None:
    certify(tmp_path, "op-loader", ("wheel_loader",))
    path = record(tmp_path, "wheel_loader", "op-loader", policy)
    with h5py.File(path, "r") as f:
        assert f.attrs["machine_kind"] == "wheel_loader"
        assert f.attrs["certification"] == "cpcs-a59 #op-loader-cert"
    (event,) = events_of(path, "certification")
    assert '"state": "certified"' in event
    certify(tmp_path, "op-both", ("excavator", "wheel_loader"))
    for machine in PROFILES:
        with h5py.File(record(tmp_path, machine, "op-both", policy), "r") as f:
            assert f.attrs["machine_kind"] == machine and f.attrs["certification"] == "cpcs-a59 #op-both-cert"


def test_certificates_name_the_registered_machine_kinds() -> None:
    assert MACHINE_KINDS == tuple(KIND_REGISTRY) == tuple(PROFILES)
