"""The ledger: episodes, accepted episodes and accepted hours per operator and task."""

import argparse
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest

from excap.episode.annotations import AnnotationSpan, store_annotation
from excap.people.ledger import add_ledger_parser, cmd_ledger
from tests.support.commands import excap_command
from tests.support.paths import REPO

# (file, operator, task, started_at, duration_s, outcome, annotation status or None, corrupt)
EPISODES = [
    ("a.h5", "op-1", "dig-and-load", "2026-11-02T08:00:00.000000Z", 1800.0, "success", "accepted", False),
    ("b.h5", "op-1", "dig-and-load", "2026-11-03T09:00:00.000000Z", 900.0, "success", "accepted", False),
    ("c.h5", "op-1", "dig-and-load", "2026-11-04T10:00:00.000000Z", 600.0, "failure", "accepted", False),
    ("d.h5", "op-1", "trenching", "2026-11-05T11:00:00.000000Z", 1200.0, "success", "rejected", False),
    ("e.h5", "op-2", "dig-and-load", "2026-11-06T12:00:00.000000Z", 3600.0, "success", "accepted", False),
    ("f.h5", "op-2", "dig-and-load", "2026-11-07T13:00:00.000000Z", 360.0, "success", None, False),
    ("g.h5", "op-2", "dig-and-load", "2026-11-08T14:00:00.000000Z", 720.0, "success", "accepted", True),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short simulated recordings, labelled as if recorded on different days by different operators."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    source = run_sim_session(SimSessionOptions(out_dir=tmp_path_factory.mktemp("source"), duration_s=1.0,
                                               cameras=0))
    out = tmp_path_factory.mktemp("ledger")
    for name, operator, task, started, duration, outcome, status, corrupt in EPISODES:
        path = out / name
        shutil.copy(source, path)
        with h5py.File(path, "r+") as handle:
            handle.attrs.update({"operator_id": operator, "task": task, "started_at": started,
                                 "duration_s": duration, "outcome": outcome})
            if corrupt:
                del handle.attrs["machine_id"]
            start = int(handle.attrs["start_t_ns"])
        if status is not None:
            store_annotation(path, [AnnotationSpan(start, start + 10**9, "dig", "proposed")], "eng", status)
    return out


def _ledger(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_ledger_parser(parser.add_subparsers(dest="command"))
    return cmd_ledger(parser.parse_args(["ledger", *argv]))


def test_ledger_csv_is_exact(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ledger.csv"
    assert _ledger(str(folder), "--csv", str(out)) == 0
    assert out.read_text() == (
        "operator_id,task,episodes,accepted,accepted_hours,last_date,machine_kind\n"
        "op-1,dig-and-load,3,2,0.7500,2026-11-04,excavator\n"
        "op-1,trenching,1,0,0.0000,2026-11-05,excavator\n"
        "op-2,dig-and-load,3,1,1.0000,2026-11-08,excavator\n"
    )
    table = capsys.readouterr().out
    assert "7 episodes, 3 accepted, 1.75 accepted hours" in table
    assert "Jane" not in table


def test_ledger_period(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ledger.csv"
    assert _ledger(str(folder), "--csv", str(out), "--since", "2026-11-03", "--until", "2026-11-06") == 0
    assert out.read_text() == (
        "operator_id,task,episodes,accepted,accepted_hours,last_date,machine_kind\n"
        "op-1,dig-and-load,2,1,0.2500,2026-11-04,excavator\n"
        "op-1,trenching,1,0,0.0000,2026-11-05,excavator\n"
        "op-2,dig-and-load,1,1,1.0000,2026-11-06,excavator\n"
    )


def test_ledger_refuses_out_of_range_dates_in_one_line(folder: Path) -> None:
    for option in ("--since", "--until"):
        result = subprocess.run(excap_command("ledger", str(folder), option, "9999-12-31"), capture_output=True,
                                text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == ["excap: error: '9999-12-31' is out of range (dates from 1678-01-01 "
                                              "to 2261-12-31)"]
