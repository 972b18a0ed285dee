"""`excap can import/export` refuse bad input with one clear line: on a CAN log written here with python-can,
so these run in every clone (the tests on the real recordings are in test_can_logs.py)."""

import subprocess
from pathlib import Path

import can
import pytest

from excap.convert.can_log_export import export_can_log
from excap.convert.can_logs import import_can_log
from excap.core.errors import ExcapError
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO

EEC1 = 0x0CF00400  # J1939 EEC1 from the engine (source address 0)


@pytest.fixture(scope="module")
def candump_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small candump log: engine-speed frames and an 11-bit frame."""
    log = tmp_path_factory.mktemp("can_log") / "frames.log"
    with can.Logger(log) as writer:
        for index in range(20):
            speed = (1200 + index) * 8  # 0.125 rpm per bit
            data = bytes([0xF0, 0x7D, 0x7D, speed & 0xFF, speed >> 8, 0xFF, 0xF0, 0x7D])
            writer.on_message_received(can.Message(timestamp=1700000000.0 + index * 0.01, arbitration_id=EEC1,
                                                   is_extended_id=True, data=data, channel="can0"))
        writer.on_message_received(can.Message(timestamp=1700000000.5, arbitration_id=0x123, is_extended_id=False,
                                               data=b"\x01\x02", channel="can0"))
    return log


@pytest.fixture(scope="module")
def imported(candump_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    episode = import_can_log(candump_log, tmp_path_factory.mktemp("imported") / "frames.h5")
    assert validate_episode(episode) == []
    return episode


def test_import_refuses_bad_input(tmp_path: Path, candump_log: Path, imported: Path) -> None:
    with pytest.raises(ExcapError, match="already exists"):
        import_can_log(candump_log, imported)
    with pytest.raises(ExcapError, match="no such file"):
        import_can_log(tmp_path / "missing.log", tmp_path / "out.h5")
    (tmp_path / "notes.txt").write_text("not a CAN log\n")
    with pytest.raises(ExcapError, match="cannot read CAN log"):
        import_can_log(tmp_path / "notes.txt", tmp_path / "out.h5")
    with pytest.raises(ExcapError, match="machine_kind"):
        import_can_log(candump_log, tmp_path / "out.h5", machine_kind="crane")
    assert not (tmp_path / "out.h5").exists()
    assert list(tmp_path.glob(".*partial")) == []


def test_export_refuses_an_unknown_channel(imported: Path, tmp_path: Path) -> None:
    with pytest.raises(ExcapError, match="no CAN channel 'can7'"):
        export_can_log(imported, tmp_path / "none.log", channel="can7")
    assert not (tmp_path / "none.log").exists()


def run_excap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_one_line_errors(tmp_path: Path, candump_log: Path, imported: Path) -> None:
    cases = [
        ("can", "import", str(tmp_path / "missing.log"), "--out", str(tmp_path / "a.h5")),
        ("can", "import", str(candump_log), "--out", str(imported)),
        ("can", "export", str(imported), "--out", str(imported)),
        ("can", "import", str(REPO / "pyproject.toml"), "--out", str(tmp_path / "b.h5")),
        ("can", "export", str(imported), "--out", str(tmp_path / "frames.unknown")),
    ]
    expected = ["no such file", "already exists", "already exists", "cannot read CAN log", "cannot write CAN log"]
    for args, text in zip(cases, expected, strict=True):
        result = run_excap(*args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("excap: error: ") and text in lines[0], result.stderr
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()
    assert not (tmp_path / "frames.unknown").exists()
    assert validate_episode(imported) == []  # the refused commands left the existing episode alone
