"""CAN log import against hostile logs, and the text formats (.trc, .csv) round trip. Needs no recordings."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import can
import h5py
import numpy as np
import pytest

from excap.convert.can_log_export import export_can_log
from excap.convert.can_log_reading import MAX_LINE_CHARS
from excap.convert.can_logs import import_can_log_report
from excap.core.errors import ConfigError, ExcapError
from excap.episode.can_frames import invalid_rows
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO

T0 = 1_600_000_000.0


def messages(count: int = 20, channel: int | str = 0) -> list[can.Message]:
    """J1939-like frames, some extended, some standard, varying lengths."""
    out = []
    for k in range(count):
        extended = k % 3 != 0
        out.append(can.Message(timestamp=T0 + k * 0.01, arbitration_id=0x18FEF100 + k if extended else 0x100 + k,
                               is_extended_id=extended, data=bytes((k + i) % 256 for i in range(k % 9)),
                               channel=channel))
    return out


def write_log(path: Path, frames: list[can.Message]) -> Path:
    with can.Logger(path) as writer:
        for msg in frames:
            writer.on_message_received(msg)
    return path


def stored_frames(episode: Path) -> list[tuple[int, bool, bytes, int]]:
    """(id, extended, data, t_ns) of every raw frame stored, checking each is a valid frame."""
    frames = []
    with h5py.File(episode, "r") as handle:
        for channel in handle["can"]:
            group = handle[f"can/{channel}"]
            ids, extended, dlc = group["id"][()], group["extended"][()], group["dlc"][()]
            assert invalid_rows(ids, extended, dlc, bool(group.attrs["fd"])).size == 0
            for i, e, d, data, t in zip(ids.tolist(), extended.tolist(), dlc.tolist(), group["data"][()],
                                        group["t_ns"][()].tolist(), strict=True):
                frames.append((i, e, bytes(data[:d]), t))
    return sorted(frames, key=lambda f: f[3])


def expected(frames: list[can.Message]) -> list[tuple[int, bool, bytes, int]]:
    return [(m.arbitration_id, m.is_extended_id, bytes(m.data), round(m.timestamp * 1e6) * 1000) for m in frames]


def rounded(frames: list[tuple[int, bool, bytes, int]], unit_ns: int) -> list[tuple[int, bool, bytes, int]]:
    return [(i, e, d, round(t / unit_ns) * unit_ns) for i, e, d, t in frames]


@pytest.mark.parametrize("suffix,unit_ns", [(".csv", 1_000), (".trc", 1_000_000), (".log", 1_000)])
def test_text_formats_round_trip(tmp_path: Path, suffix: str, unit_ns: int) -> None:
    """python-can writes the log; excap imports it, exports it again in the same format and imports that."""
    frames = messages()
    log = write_log(tmp_path / f"written{suffix}", frames)
    report = import_can_log_report(log, tmp_path / "first.h5")
    assert report.skipped == 0 and sum(report.frames.values()) == len(frames)
    assert validate_episode(report.path) == []
    first = stored_frames(report.path)
    assert rounded(first, unit_ns) == rounded(expected(frames), unit_ns)  # .trc keeps milliseconds only
    again = tmp_path / f"again{suffix}"
    assert export_can_log(report.path, again) == len(frames)
    second = import_can_log_report(again, tmp_path / "second.h5")
    assert rounded(stored_frames(second.path), unit_ns) == rounded(first, unit_ns)


def test_hand_written_trc_and_csv_import(tmp_path: Path) -> None:
    trc = tmp_path / "peak.trc"
    trc.write_text(";$FILEVERSION=2.1\n;$STARTTIME=44087.51851851852\n;$COLUMNS=N,O,T,B,I,d,R,L,D\n"
                   "      1         0.000 DT  1 18FEF100 Rx -  8    00 01 02 03 04 05 06 07\n"
                   "      2        12.500 DT  1     0123 Rx -  2    AA BB\n", encoding="utf-8")
    csv = tmp_path / "frames.csv"
    csv.write_text("timestamp,arbitration_id,extended,remote,error,dlc,data\n"
                   "1600000000.0,0x18fef100,1,0,0,8,AAECAwQFBgc=\n1600000000.0125,0x123,0,0,0,2,qrs=\n",
                   encoding="utf-8")
    for log in (trc, csv):
        report = import_can_log_report(log, tmp_path / f"{log.stem}.h5")
        frames = stored_frames(report.path)
        assert [(i, e, d) for i, e, d, _ in frames] == [(0x18FEF100, True, bytes(range(8))),
                                                        (0x123, False, b"\xaa\xbb")]
        assert frames[1][3] - frames[0][3] == 12_500_000
        assert validate_episode(report.path) == []


HOSTILE_CANDUMP = [
    "(nan) can0 18FEF100#0001020304050607",  # NaN timestamp
    "(inf) can0 18FEF100#0001020304050607",
    "(-inf) can0 18FEF100#00",
    "(99999999999.0) can0 18FEF100#00",  # year 5138
    "(1e300) can0 18FEF100#00",
    "(-5.0) can0 123#00",
    "(1600000000.5) can0 123#000102030405060708",  # 9 bytes in a classic frame
    "(1600000000.5) can0 FFF#00",  # 11-bit id beyond 0x7FF
    "(1600000000.5) can0 123##1" + "00" * 65,  # CAN FD with 65 bytes
    "(1600000000.5) can0 123#0",  # half a byte
    "(1600000000.5) can0 1234567890ABCDEF#00",
    "hello world",
    "(1600000000.5) can0 ZZZ#00",
    "(1600000000.5) can0 123#" + "AB" * 2_500_000,  # a 5 MB line
]


def test_hostile_candump_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    good = messages(10, "can0")
    log = tmp_path / "hostile.log"
    with log.open("w", encoding="utf-8") as handle:
        lines = [f"({m.timestamp:.6f}) can0 {m.arbitration_id:08X}#{m.data.hex().upper()}" if m.is_extended_id
                 else f"({m.timestamp:.6f}) can0 {m.arbitration_id:03X}#{m.data.hex().upper()}" for m in good]
        for k, line in enumerate(lines):
            handle.write(line + "\n")
            handle.write(HOSTILE_CANDUMP[k % len(HOSTILE_CANDUMP)] + "\n")
        for line in HOSTILE_CANDUMP[len(lines):]:
            handle.write(line + "\n")
    report = import_can_log_report(log, tmp_path / "hostile.h5")
    assert sum(report.frames.values()) == len(good)
    assert report.skipped == len(HOSTILE_CANDUMP)
    assert len(report.skip_reasons) == 5 and "line 2: timestamp nan" in report.skip_reasons[0]
    assert "skipped 14 invalid" in report.summary()
    assert stored_frames(report.path) == expected(good)
    assert validate_episode(report.path) == []


def test_asc_dlc_and_id_out_of_range_are_not_stored(tmp_path: Path) -> None:
    header = ("date Sun Sep 13 12:26:40.000 2020\nbase hex  timestamps absolute\ninternal events logged\n"
              "Begin Triggerblock Sun Sep 13 12:26:40.000 2020\n 0.000000 Start of measurement\n")
    rows = [
        " 0.001000 1  18FEF100x       Rx   d 8 00 01 02 03 04 05 06 07",
        " 0.002000 1  123             Rx   d 63 00 01 02 03 04 05 06 07",  # DLC 99 (hex 63)
        " 0.003000 1  123             Rx   d 12C 00 01",  # DLC 300
        " 0.004000 1  123             Rx   d -5 00 01",
        " 0.005000 1  1FFFFFFFFx      Rx   d 1 00",  # id beyond 29 bits (and beyond 32)
        " 0.006000 1  123             Rx   d 2 AA BB",
    ]
    log = tmp_path / "vector.asc"
    log.write_text(header + "\n".join(rows) + "\nEnd TriggerBlock\n", encoding="utf-8")
    report = import_can_log_report(log, tmp_path / "vector.h5")
    frames = stored_frames(report.path)
    assert [(i, e, d) for i, e, d, _ in frames] == [(0x18FEF100, True, bytes(range(8))), (0x123, False, b"\xaa\xbb")]
    assert report.skipped == 4, report.skip_reasons
    with h5py.File(report.path, "r") as handle:
        assert int(handle["can/can0/dlc"][()].max()) <= 8  # DLC 99 is never stored


def test_hostile_csv_rows(tmp_path: Path) -> None:
    log = tmp_path / "rows.csv"
    log.write_text("timestamp,arbitration_id,extended,remote,error,dlc,data\n"
                   "1600000000.0,0x18fef100,1,0,0,8,AAECAwQFBgc=\n"
                   "nan,0x123,0,0,0,1,AA==\n"
                   "1600000000.1,0x100000000,1,0,0,1,AA==\n"
                   "1600000000.2,0x123,0,0,0,300,AA==\n"
                   "1600000000.3,0x123,0,0,0,-5,AA==\n"
                   "1600000000.4,0x123,0,0,0,2,not base64!\n"
                   "too,few,fields\n", encoding="utf-8")
    report = import_can_log_report(log, tmp_path / "rows.h5")
    assert sum(report.frames.values()) == 1 and report.skipped == 6, report.skip_reasons


def test_a_log_without_valid_frames_is_one_error_line(tmp_path: Path) -> None:
    log = tmp_path / "junk.log"
    log.write_text("\n".join(HOSTILE_CANDUMP[:6]) + "\n", encoding="utf-8")
    with pytest.raises(ExcapError, match="no valid CAN frames") as caught:
        import_can_log_report(log, tmp_path / "junk.h5")
    assert "\n" not in str(caught.value) and "6 invalid frames skipped" in str(caught.value)
    assert not (tmp_path / "junk.h5").exists()
    result = subprocess.run(excap_command("can", "import", str(log), "--out", str(tmp_path / "cli.h5")),
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"excap: error: {log}: no valid CAN frames")


def test_over_long_lines_are_not_held_in_memory(tmp_path: Path) -> None:
    """A line far beyond MAX_LINE_CHARS in a whole-file format (.asc) is dropped before python-can reads it."""
    header = ("date Sun Sep 13 12:26:40.000 2020\nbase hex  timestamps absolute\n"
              "Begin Triggerblock Sun Sep 13 12:26:40.000 2020\n")
    log = tmp_path / "long.asc"
    log.write_text(header + " 0.001000 1  123             Rx   d 2 AA BB\n" + " 0.002000 1  123 Rx d 8 "
                   + "00 " * (MAX_LINE_CHARS * 3) + "\nEnd TriggerBlock\n", encoding="utf-8")
    report = import_can_log_report(log, tmp_path / "long.h5")
    assert sum(report.frames.values()) == 1 and report.skipped == 1
    assert f"longer than {MAX_LINE_CHARS} characters" in report.skip_reasons[0]


@pytest.mark.parametrize("key,value,message", [
    ("episode_id", "../../x", "episode_id"),
    ("episode_id", "a/b", "episode_id"),
    ("episode_id", ".hidden", "episode_id"),
    ("machine_id", "../m", "machine_id"),
    ("profile", "/etc/passwd", "profile"),
    ("notes", "two\nlines", "notes"),
    ("site", "s" * 500, "site"),
    ("software", "excap 99", "unknown episode metadata"),
    ("colour", "red", "unknown episode metadata"),
    ("outcome", "won", "outcome"),
])
def test_set_metadata_is_an_allow_list_with_checked_values(tmp_path: Path, key: str, value: str,
                                                           message: str) -> None:
    log = write_log(tmp_path / "ok.log", messages(3, "can0"))
    with pytest.raises(ConfigError, match=message):
        import_can_log_report(log, tmp_path / "out.h5", **{key: value})
    assert not (tmp_path / "out.h5").exists() and not list(tmp_path.glob("*.partial"))


def test_cli_set_refuses_a_path_as_episode_id(tmp_path: Path) -> None:
    log = write_log(tmp_path / "ok.log", messages(3, "can0"))
    result = subprocess.run(excap_command("can", "import", str(log), "--out", str(tmp_path / "out.h5"),
                                          "--set", "episode_id=../../x"), capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "episode_id" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.log"]
    accepted = subprocess.run(excap_command("can", "import", str(log), "--out", str(tmp_path / "out.h5"),
                                            "--set", "episode_id=20200913T122640Z_demo_abc123",
                                            "--set", "site=quarry-7"),
                              capture_output=True, text=True, cwd=REPO, timeout=120)
    assert accepted.returncode == 0, accepted.stderr
    with h5py.File(tmp_path / "out.h5", "r") as handle:
        assert handle.attrs["episode_id"] == "20200913T122640Z_demo_abc123" and handle.attrs["site"] == "quarry-7"


def test_timestamps_keep_nanosecond_identity(tmp_path: Path) -> None:
    log = write_log(tmp_path / "t.log", messages(5, "can0"))
    report = import_can_log_report(log, tmp_path / "t.h5")
    times = [t for *_, t in stored_frames(report.path)]
    assert all(math.isclose(t / 1e9, T0 + k * 0.01, abs_tol=1e-6) for k, t in enumerate(times))
    assert np.all(np.diff(times) > 0)
