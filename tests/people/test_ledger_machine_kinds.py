"""The ledger counts hours per machine kind: an operator's excavator and wheel loader hours for the same task are
separate rows, and the table sums accepted hours per kind."""

import argparse
import shutil
from pathlib import Path

import h5py
import pytest

from excap.episode.annotations import AnnotationSpan, store_annotation
from excap.people.ledger import CSV_COLUMNS, add_ledger_parser, build_ledger, cmd_ledger, ledger_episodes

# (file, machine kind, operator, started_at, duration_s, annotation status)
EPISODES = [
    ("x1.h5", "excavator", "op-1", "2026-11-02T08:00:00.000000Z", 1800.0, "accepted"),
    ("w1.h5", "wheel_loader", "op-1", "2026-11-03T09:00:00.000000Z", 900.0, "accepted"),
    ("w2.h5", "wheel_loader", "op-1", "2026-11-04T10:00:00.000000Z", 600.0, "rejected"),
    ("w3.h5", "wheel_loader", "op-2", "2026-11-05T11:00:00.000000Z", 3600.0, "accepted"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short simulated recordings of each kind, labelled as if recorded on different days by two operators."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    sources = {kind: run_sim_session(SimSessionOptions(out_dir=tmp_path_factory.mktemp(kind), profile=profile,
                                                       duration_s=1.0, cameras=0))
               for kind, profile in (("excavator", "excavator_20t"), ("wheel_loader", "wheel_loader_20t"))}
    out = tmp_path_factory.mktemp("ledger_kinds")
    for name, kind, operator, started, duration, status in EPISODES:
        path = out / name
        shutil.copy(sources[kind], path)
        with h5py.File(path, "r+") as handle:
            assert handle.attrs["machine_kind"] == kind
            handle.attrs.update({"operator_id": operator, "task": "load-trucks", "started_at": started,
                                 "duration_s": duration, "outcome": "success"})
            start = int(handle.attrs["start_t_ns"])
        store_annotation(path, [AnnotationSpan(start, start + 10**9, "idle", "proposed")], "eng", status)
    return out


def test_rows_per_operator_task_and_machine_kind(folder: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_ledger_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "ledger.csv"
    assert cmd_ledger(parser.parse_args(["ledger", str(folder), "--csv", str(out)])) == 0
    assert CSV_COLUMNS[-1] == "machine_kind"
    assert out.read_text() == (
        "operator_id,task,episodes,accepted,accepted_hours,last_date,machine_kind\n"
        "op-1,load-trucks,1,1,0.5000,2026-11-02,excavator\n"
        "op-1,load-trucks,2,1,0.2500,2026-11-04,wheel_loader\n"
        "op-2,load-trucks,1,1,1.0000,2026-11-05,wheel_loader\n"
    )
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["operator", "task", "episodes", "accepted", "accepted", "h", "last", "date",
                                "machine"]
    assert table[2].split() == ["op-1", "load-trucks", "2", "1", "0.25", "2026-11-04", "wheel_loader"]
    assert "4 episodes, 3 accepted, 1.75 accepted hours" in table
    assert "accepted hours by machine kind: excavator 0.50, wheel_loader 1.25" in table


def test_the_machine_kind_comes_from_each_episode(folder: Path) -> None:
    episodes = ledger_episodes(folder, warn=None)
    assert {e.path.name: e.machine_kind for e in episodes} == {name: kind for name, kind, *_ in EPISODES}
    rows = build_ledger([e for e in episodes if e.machine_kind == "wheel_loader"])
    assert [(r.operator_id, r.machine_kind, r.episodes, r.accepted_hours) for r in rows] == [
        ("op-1", "wheel_loader", 2, 0.25), ("op-2", "wheel_loader", 1, 1.0)]
