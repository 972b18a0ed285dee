"""Fuzz: generated candump, Vector ASC, python-can CSV and PEAK TRC logs imported with `import_can_log_report`.

Lines mix plausible frames with random identifiers, DLCs, data, timestamps (NaN, infinite, negative, far future)
and junk. The import may only raise ExcapError, must not hang, and every frame it stores must be valid.
"""

from __future__ import annotations

import base64
import math
import time
from pathlib import Path

import h5py
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.convert.can_logs import import_can_log_report
from excap.core.errors import ExcapError
from excap.episode.can_frames import invalid_rows
from excap.episode.validation import validate_episode
from tests.support.fuzzing import fuzz_settings, tried

IMPORT_LIMIT_S = 10.0
ASC_HEADER = ("date Sun Sep 13 12:26:40.000 2020\nbase hex  timestamps absolute\ninternal events logged\n"
              "Begin Triggerblock Sun Sep 13 12:26:40.000 2020\n 0.000000 Start of measurement\n")
TRC_HEADER = ";$FILEVERSION=2.1\n;$STARTTIME=44087.51851851852\n;$COLUMNS=N,O,T,B,I,d,R,L,D\n"
CSV_HEADER = "timestamp,arbitration_id,extended,remote,error,dlc,data\n"

timestamps = st.one_of(st.floats(1.6e9, 1.7e9), st.floats(0, 100), st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 1e15, 1e300]))
identifiers = st.one_of(st.integers(0, 0x7FF), st.integers(0, 0x1FFFFFFF), st.integers(0, 2**64))
payloads = st.binary(max_size=70)
junk = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=80)


def _hex(value: int) -> str:
    return f"{value:X}"


@st.composite
def candump_line(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    ident = draw(identifiers)
    extended = draw(st.booleans())
    ident_text = draw(st.sampled_from([f"{ident:08X}" if extended else f"{ident:03X}", _hex(ident)]))
    data = draw(payloads).hex().upper()
    if draw(st.integers(0, 9)) == 0:
        data = data[:-1]  # half a byte
    separator = draw(st.sampled_from(["#", "#", "#", "##1", "#R"]))
    return f"({draw(timestamps)!r}) {draw(st.sampled_from(['can0', 'can1', 'vcan0']))} {ident_text}{separator}{data}"


@st.composite
def asc_line(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    ident = draw(identifiers)
    data = draw(payloads)
    dlc = draw(st.one_of(st.just(len(data)), st.integers(-10, 400)))
    dlc_text = f"{dlc:X}" if dlc >= 0 else f"-{-dlc:X}"
    stamp = draw(st.one_of(st.floats(0, 1000), st.sampled_from([math.nan, math.inf, -5.0, 1e12])))
    suffix = "x" if draw(st.booleans()) else ""
    body = " ".join(f"{b:02X}" for b in data)
    return f" {stamp:.6f} {draw(st.integers(1, 3))}  {ident:X}{suffix}       Rx   d {dlc_text} {body}"


@st.composite
def csv_line(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    data = draw(payloads)
    dlc = draw(st.one_of(st.just(len(data)), st.integers(-10, 400)))
    return (f"{draw(timestamps)!r},{draw(identifiers):#x},{draw(st.sampled_from('01'))},{draw(st.sampled_from('01'))},"
            f"0,{dlc},{base64.b64encode(data).decode()}")


@st.composite
def trc_line(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(junk)
    data = draw(payloads)
    dlc = draw(st.one_of(st.just(len(data)), st.integers(-10, 400)))
    offset_ms = draw(st.one_of(st.floats(0, 1e6), st.sampled_from([math.nan, math.inf, -1.0, 1e18])))
    ident = draw(identifiers)
    return (f"{draw(st.integers(0, 10**6)):>7} {offset_ms:13.3f} DT {draw(st.integers(1, 3)):>2} {ident:>8X} Rx -  "
            f"{dlc:<4} {' '.join(f'{b:02X}' for b in data)}")


FORMATS = {".log": ("", candump_line()), ".asc": (ASC_HEADER, asc_line()), ".csv": (CSV_HEADER, csv_line()),
           ".trc": (TRC_HEADER, trc_line())}


def check_import(log: Path, out: Path) -> bool:
    """Import `log`; True if an episode was written (then checked), False for a one-line error."""
    out.unlink(missing_ok=True)
    started = time.monotonic()
    try:
        report = import_can_log_report(log, out)
    except ExcapError as exc:
        assert "\n" not in str(exc)
        assert not out.exists()
        return False
    finally:
        assert time.monotonic() - started < IMPORT_LIMIT_S
    assert validate_episode(report.path) == []
    with h5py.File(report.path, "r") as handle:
        for channel in handle["can"]:
            group = handle[f"can/{channel}"]
            bad = invalid_rows(group["id"][()], group["extended"][()], group["dlc"][()], bool(group.attrs["fd"]))
            assert bad.size == 0
    return True


@pytest.mark.parametrize("suffix", sorted(FORMATS))
def test_generated_logs_import_or_fail_in_one_line(suffix: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    header, line = FORMATS[suffix]
    folder = tmp_path_factory.mktemp(f"fuzz-can{suffix}")
    imported: list[str] = []

    @fuzz_settings(40)
    @given(lines=st.lists(line, min_size=1, max_size=12))
    def run(lines: list[str]) -> None:
        log = folder / f"generated{suffix}"
        log.write_text(header + "\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        tried(f"CAN log import {suffix}")
        if check_import(log, folder / "generated.h5"):
            imported.append(log.name)

    run()
    assert imported, "no generated log had a valid frame: the generator is too hostile to test imports"
