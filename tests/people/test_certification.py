"""Certification status from the operator registry, the recording policy, and `excap operator`."""

import argparse
import json
import stat
from datetime import date
from pathlib import Path

import pytest

from excap.core.errors import ConfigError
from excap.people.admin import add_operator_parser, cmd_operator
from excap.people.certification import (
    EXPIRED,
    MISSING,
    WRONG_MACHINE_KIND,
    apply_check,
    certification_status,
    check_before_recording,
    policy_of,
)
from excap.people.registry import load_registry, registry_path
from excap.station.config import load_station_config

DAY = date(2026, 11, 23)
REGISTRY = """
operators:
  - operator_id: op-1
    display_name: Jane Doe
    consent_to_share: true
    certificates:
      - {kind: excavator-cpcs-a59, machine_kinds: [excavator], expiry: 2027-06-30, ref: "A59-001"}
  - operator_id: op-2
    display_name: John Roe
    certificates:
      - {kind: excavator-cpcs-a59, machine_kinds: [excavator], expiry: 2026-11-22}
  - operator_id: op-3
    certificates:
      - {kind: loader-cpcs-a21, machine_kinds: [wheel_loader], expiry: 2027-01-01}
  - operator_id: op-4
    display_name: Nobody
"""


@pytest.fixture
def registry(tmp_path: Path):
    path = registry_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(REGISTRY)
    return load_registry(path)


def test_certified_with_reference(registry) -> None:
    status = certification_status(registry, "op-1", "excavator", DAY)
    assert status.certified
    assert status.ref == "excavator-cpcs-a59 #A59-001 (valid to 2027-06-30)"


def test_valid_through_the_expiry_day(registry) -> None:
    assert certification_status(registry, "op-2", "excavator", date(2026, 11, 22)).certified
    status = certification_status(registry, "op-2", "excavator", DAY)
    assert status.state == EXPIRED and "expired on 2026-11-22" in status.reason


def test_missing_and_wrong_machine_kind(registry) -> None:
    assert certification_status(registry, "op-9", "excavator", DAY).state == MISSING
    assert certification_status(registry, "op-4", "excavator", DAY).state == MISSING
    assert certification_status(None, "op-1", "excavator", DAY).state == MISSING
    status = certification_status(registry, "op-3", "excavator", DAY)
    assert status.state == WRONG_MACHINE_KIND and "wheel_loader only" in status.reason
    assert certification_status(registry, "op-3", "wheel_loader", DAY).certified


def test_policy_refuse_and_mark_uncertified(registry) -> None:
    allowed, updates, message = check_before_recording(registry, "op-1", "excavator", "refuse", DAY)[:3]
    assert allowed and updates == {"certification": "excavator-cpcs-a59 #A59-001 (valid to 2027-06-30)"}
    allowed, updates, message = check_before_recording(registry, "op-2", "excavator", "refuse", DAY)[:3]
    assert not allowed and updates == {} and "expired" in message
    check = check_before_recording(registry, "op-3", "excavator", "mark_uncertified", DAY)
    assert check.allowed
    assert check.metadata["certification"].startswith("UNCERTIFIED: not certified for excavator")
    with pytest.raises(ValueError):
        check_before_recording(registry, "op-1", "excavator", "ignore", DAY)


def test_mark_uncertified_reaches_the_episode(registry, tmp_path: Path) -> None:
    from excap.episode.metadata import EpisodeMetadata
    from excap.episode.reader import EpisodeReader
    from excap.record.recorder import Recorder, RecorderConfig

    check = check_before_recording(registry, "op-2", "excavator", "mark_uncertified", DAY)
    recorder = Recorder(RecorderConfig(tmp_path / "eps"), EpisodeMetadata(
        machine_kind="excavator", machine_model="m", machine_id="exc-1", control_pattern="iso", operator_id="op-2"))
    apply_check(recorder, check)
    with recorder:
        pass
    with EpisodeReader(recorder.paths.final) as episode:
        assert episode.metadata["certification"] == check.metadata["certification"]
        events = [e for e in episode.events() if e.kind == "certification"]
    assert len(events) == 1 and events[0].detail["state"] == EXPIRED


def test_station_config_policy_key(tmp_path: Path) -> None:
    import yaml

    source = Path(__file__).resolve().parents[2] / "examples" / "station_sim.yaml"
    data = yaml.safe_load(source.read_text())
    data["station"]["out_dir"] = str(tmp_path / "episodes")
    config = tmp_path / "station.yaml"
    data["session"]["certification_policy"] = "mark"
    config.write_text(yaml.safe_dump(data))
    assert policy_of(load_station_config(config).session) == "mark"
    data["session"]["certification_policy"] = "mark_uncertified"  # the accepted alias
    config.write_text(yaml.safe_dump(data))
    assert policy_of(load_station_config(config).session) == "mark"
    data["session"]["certification_policy"] = "maybe"
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"session\.certification_policy"):
        load_station_config(config)
    del data["session"]["certification_policy"]
    config.write_text(yaml.safe_dump(data))
    assert policy_of(load_station_config(config).session) == "refuse"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_operator_parser(parser.add_subparsers(dest="command"))
    return cmd_operator(parser.parse_args(argv))


def test_operator_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = str(tmp_path)
    assert _run("operator", "add", "op-7", "--name", "Ada Private", "--dir", folder) == 0
    assert _run("operator", "certify", "op-7", "--kind", "a59", "--machine-kind", "excavator",
                "--expiry", "2030-01-01", "--ref", "N1", "--dir", folder) == 0
    assert _run("operator", "consent", "op-7", "--yes", "--date", "2026-11-01", "--dir", folder) == 0
    path = registry_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    operator = load_registry(path).get("op-7")
    assert operator is not None and operator.consent_to_share and operator.display_name == "Ada Private"
    assert operator.certificates[0].extra == {"ref": "N1"}
    with pytest.raises(ConfigError, match="already registered"):
        _run("operator", "add", "op-7", "--dir", folder)
    capsys.readouterr()
    _run("operator", "list", "--dir", folder, "--date", "2026-11-23")
    listed = capsys.readouterr().out
    assert "op-7" in listed and "Ada Private" not in listed and "excavator" in listed
    _run("operator", "list", "--names", "--json", "--dir", folder, "--date", "2026-11-23")
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["display_name"] == "Ada Private" and rows[0]["certified_for"] == ["excavator"]
