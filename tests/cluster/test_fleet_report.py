"""`excap fleet-report`: every episode of a folder or an object-store prefix checked in one task each, the same
report whichever engine runs the tasks (serial, local processes, the real Ray cluster of
tests/support/ray_cluster.py), and as a command (JSON, table, plot)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from excap.cluster.engine import ProcessExecutor, SerialExecutor
from excap.cluster.fleet_report import fleet_report
from excap.cluster.ray_engine import RayExecutor
from excap.delivery.s3sync import SyncOptions, push
from tests.support.commands import excap_command
from tests.support.fleet_folder import ANNOTATED_PHASES_S
from tests.support.paths import REPO
from tests.support.ray_cluster import RayCluster
from tests.support.recorded_folder import OPERATORS
from tests.support.seaweedfs import SeaweedFS
from tests.support.uplink import upload_env


def _without_source(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key != "source"}


@pytest.fixture(scope="module")
def serial_report(fleet_folder: Path) -> dict[str, Any]:
    return fleet_report(str(fleet_folder), SerialExecutor()).as_json()


def test_the_serial_report_of_a_folder(serial_report: dict[str, Any], fleet_folder: Path) -> None:
    total = serial_report["total"]
    assert (total["episodes"], total["invalid"]) == (4, 1)
    assert 3 * 2.3 / 3600 < total["hours"] < 3 * 2.7 / 3600
    operators = serial_report["groups"]["operator"]
    assert sorted(operators) == sorted([*OPERATORS, "(none)"])
    assert all(operators[o]["episodes"] == 1 and operators[o]["invalid"] == 0 for o in OPERATORS)
    assert operators["(none)"]["invalid"] == 1
    assert serial_report["groups"]["kind"]["excavator"]["episodes"] == 3
    annotated = sum(ANNOTATED_PHASES_S.values())
    assert total["phase_fractions"] == {label: round(s / annotated, 4) for label, s in
                                        sorted(ANNOTATED_PHASES_S.items())}
    assert total["annotated_hours"] == round(annotated / 3600, 4)
    assert [p.split(":")[0] for p in serial_report["problems"]] == ["broken.h5"]
    assert serial_report["unchecked"] == []
    episodes = {e["episode"]: e for e in serial_report["episodes"]}
    assert sorted(episodes) == sorted(p.name for p in fleet_folder.glob("*.h5"))
    assert all(e["drops"] == 0 and e["gaps"] >= 0 for e in episodes.values())
    text = json.dumps(serial_report)
    assert not any(name in text for name, _ in OPERATORS.values())  # operator ids only, never names


def test_local_processes_give_the_same_report(serial_report: dict[str, Any], fleet_folder: Path) -> None:
    with ProcessExecutor(2) as executor:
        assert fleet_report(str(fleet_folder), executor).as_json() == serial_report


def test_the_ray_cluster_gives_the_same_report(serial_report: dict[str, Any], fleet_folder: Path,
                                               ray_cluster: RayCluster) -> None:
    with RayExecutor(address=ray_cluster.address) as executor:
        assert fleet_report(str(fleet_folder), executor).as_json() == serial_report


def test_an_object_store_prefix_gives_the_report_of_the_folder(serial_report: dict[str, Any], fleet_folder: Path,
                                                                 ray_cluster: RayCluster, seaweedfs: SeaweedFS,
                                                                 s3_bucket: str) -> None:
    prefix = f"s3://{s3_bucket}/fleet/station-a"
    access = SyncOptions(endpoint_url=seaweedfs.endpoint, progress=False)
    pushed = push(fleet_folder, prefix, access)
    assert len(pushed.transferred) == 4
    serial = fleet_report(prefix, SerialExecutor(), access).as_json()
    with RayExecutor(address=ray_cluster.address) as executor:
        on_ray = fleet_report(prefix, executor, access).as_json()
    assert on_ray == serial
    assert serial["source"] == prefix and _without_source(serial) == _without_source(serial_report)

    done = subprocess.run(excap_command("fleet-report", prefix, "--endpoint-url", seaweedfs.endpoint,
                                        "--ray", ray_cluster.address, "--json"),
                          capture_output=True, text=True, timeout=180, cwd=REPO, env=upload_env())
    assert done.returncode == 1, done.stderr  # the folder has an invalid episode
    assert json.loads(done.stdout) == serial


def test_a_download_that_differs_from_its_checksum_is_not_checked(fleet_folder: Path, seaweedfs: SeaweedFS,
                                                                  s3_bucket: str) -> None:
    episode = sorted(fleet_folder.glob("*.h5"))[1]
    seaweedfs.client().put_object(Bucket=s3_bucket, Key="p/ep.h5", Body=episode.read_bytes(),
                                  Metadata={"sha256": "0" * 64})
    report = fleet_report(f"s3://{s3_bucket}/p", SerialExecutor(),
                          SyncOptions(endpoint_url=seaweedfs.endpoint, progress=False))
    assert report.total.episodes == 0
    assert report.unchecked == [f"ep.h5: s3://{s3_bucket}/p/ep.h5: downloaded content differs from its sha256 "
                                "metadata"]


def test_the_command_prints_a_table_json_and_a_plot(serial_report: dict[str, Any], fleet_folder: Path,
                                                    tmp_path: Path) -> None:
    png = tmp_path / "plots" / "fleet.png"
    table = subprocess.run(excap_command("fleet-report", str(fleet_folder), "--workers", "2", "--plot", str(png)),
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert table.returncode == 1 and table.stderr == ""
    lines = table.stdout.splitlines()
    assert lines[0] == f"fleet report of {fleet_folder}: 4 episodes, 0.00 h, 1 invalid, 0 not checked"
    for group in ("operator", "machine", "site", "kind"):
        assert f"per {group}" in lines
    assert any(line.startswith("operator-anna-17") for line in lines)
    assert lines[-1].startswith("broken.h5: ")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = subprocess.run(excap_command("fleet-report", str(fleet_folder), "--json"), capture_output=True,
                             text=True, timeout=120, cwd=REPO)
    assert json.loads(as_json.stdout) == serial_report


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(excap_command("fleet-report", str(tmp_path / "nowhere")), capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"excap: error: {tmp_path / 'nowhere'}: no such "
                                                                   "folder\n")
