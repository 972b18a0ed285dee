"""CAN log import and export against real J1939 recordings (CSS Electronics CANedge MF4 files)."""

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import can
import h5py
import numpy as np
import pytest

from excap.convert.can_log_export import export_can_log
from excap.convert.can_logs import import_can_log, import_can_log_report
from excap.core.errors import ExcapError
from excap.drivers.can.j1939 import J1939Id
from excap.episode.validation import validate_episode
from tests.support.commands import excap_command
from tests.support.paths import REPO, SHARED_CAN
from tests.support.requirements import require_shared_data

SHORT = SHARED_CAN / "css-j1939-short.MF4"
HEAVY = SHARED_CAN / "css-j1939-heavy-vehicle.MF4"
DBC = SHARED_CAN / "CSS-Electronics-SAE-J1939-DEMO.dbc"
EEC1_PGN = 0xF004
ENGINE_SPEED_MAX = 8031.875  # raw 0xFAFF * 0.125 rpm


@pytest.fixture(autouse=True, scope="module")
def shared_recordings() -> None:
    """Every test here reads the real recordings; refusals of bad input are in test_can_log_errors.py."""
    require_shared_data()


def frames_by_channel(log: Path) -> dict[str, list[can.Message]]:
    """The log read directly with python-can, grouped as the importer names channels (int n -> can<n>)."""
    channels: dict[str, list[can.Message]] = defaultdict(list)
    for msg in can.LogReader(log):
        channels[f"can{msg.channel}"].append(msg)
    return dict(channels)


def raw_stream(path: Path, channel: str) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as handle:
        group = handle[f"can/{channel}"]
        return {name: group[name][()] for name in ("t_ns", "t_device_ns", "id", "extended", "dlc", "data")}


@pytest.fixture(scope="module")
def short_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return import_can_log(SHORT, tmp_path_factory.mktemp("can_logs") / "short.h5", DBC)


def test_import_matches_direct_read(short_episode: Path) -> None:
    direct = frames_by_channel(SHORT)
    assert validate_episode(short_episode) == []
    with h5py.File(short_episode, "r") as handle:
        assert sorted(handle["can"]) == sorted(direct) == ["can1", "can2"]
        attrs = dict(handle.attrs)
        assert "css-j1939-short.MF4" in attrs["notes"]
        assert attrs["machine_kind"] == "excavator" and attrs["recovered"] == np.False_
        assert attrs["clock_offset_ns"] == 0
        assert handle["control/commands"].shape[0] == 0 and len(handle["control/commands"].attrs["names"]) > 0
        kinds = list(handle["events/kind"].asstr()[()])
        assert kinds[0] == "start" and kinds[-1] == "stop"
    first = min(msgs[0].timestamp for msgs in direct.values())
    assert attrs["start_t_ns"] == 1622547830084000000  # the recording's first timestamp, 1622547830.084000 s
    assert abs(attrs["start_t_ns"] - round(first * 1e9)) <= 256
    assert attrs["started_at"].startswith("2021-06-01T11:43:50.084")
    assert sum(len(m) for m in direct.values()) == 1815
    for channel, messages in direct.items():
        raw = raw_stream(short_episode, channel)
        assert len(raw["t_ns"]) == len(messages)
        assert raw["id"].tolist() == [m.arbitration_id for m in messages]
        assert raw["extended"].tolist() == [m.is_extended_id for m in messages]
        assert raw["dlc"].tolist() == [m.dlc for m in messages]
        assert [bytes(row[:m.dlc]) for row, m in zip(raw["data"], messages, strict=True)] == \
            [bytes(m.data) for m in messages]
        expected_ns = [round(m.timestamp * 1e9) for m in messages]
        assert np.abs(raw["t_ns"] - np.array(expected_ns)).max() <= 256  # float64 spacing at 1.6e18 is 256 ns
        assert np.all(raw["t_ns"] % 1000 == 0)  # CANedge timestamps are whole microseconds
        assert np.array_equal(raw["t_ns"], raw["t_device_ns"])
        # Lossless: the nanoseconds give back the very float seconds python-can read.
        assert [int(t) / 1_000_000_000 for t in raw["t_ns"]] == [m.timestamp for m in messages]


def test_eec1_engine_speed_decoded(short_episode: Path) -> None:
    raw = raw_stream(short_episode, "can1")
    is_eec1 = np.array([J1939Id.parse(int(i)).pgn == EEC1_PGN for i in raw["id"]]) & raw["extended"]
    engine_raw = raw["data"][is_eec1, 3].astype(np.int64) | (raw["data"][is_eec1, 4].astype(np.int64) << 8)
    with h5py.File(short_episode, "r") as handle:
        group = handle["can/can1/decoded/EEC1"]
        speed = group["EngineSpeed"][()]
        assert group["EngineSpeed"].attrs["unit"] == "rpm"
        assert np.array_equal(group["t_ns"][()], raw["t_ns"][is_eec1])
        assert set(group["source_address"][()].tolist()) == {0x00}
    assert len(speed) == int(is_eec1.sum()) > 100
    available = engine_raw <= 0xFAFF
    assert np.array_equal(np.isnan(speed), ~available)
    assert np.all((speed[available] >= 0) & (speed[available] <= ENGINE_SPEED_MAX))
    assert np.array_equal(speed[available], engine_raw[available] * 0.125)


def test_not_available_engine_speed_is_nan(tmp_path: Path) -> None:
    """The recordings hold no not-available engine speeds, so set some in a copy of their EEC1 frames."""
    messages = [m for m in can.LogReader(SHORT) if m.channel == 1]
    eec1 = [i for i, m in enumerate(messages) if m.is_extended_id and J1939Id.parse(m.arbitration_id).pgn == EEC1_PGN]
    replaced = {eec1[3]: b"\xff\xff", eec1[4]: b"\x00\xfb", eec1[5]: b"\xff\xfa", eec1[6]: b"\x00\xfe"}
    assert len(eec1) > 7
    log = tmp_path / "edited.log"
    with can.Logger(log) as writer:
        for index, msg in enumerate(messages):
            msg.channel = "can0"
            if index in replaced:
                data = bytearray(msg.data)
                data[3:5] = replaced[index]
                msg = can.Message(timestamp=msg.timestamp, arbitration_id=msg.arbitration_id, is_extended_id=True,
                                  data=bytes(data), channel="can0")
            writer.on_message_received(msg)
    episode = import_can_log(log, tmp_path / "edited.h5", DBC)
    with h5py.File(episode, "r") as handle:
        speed = handle["can/can0/decoded/EEC1/EngineSpeed"][()]
    assert len(speed) == len(eec1)
    assert np.isnan(speed[[3, 4, 6]]).all()  # 0xFFFF not available, 0xFB00 and 0xFE00 reserved/error
    assert speed[5] == ENGINE_SPEED_MAX
    assert np.count_nonzero(np.isnan(speed)) == 3


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
def test_export_and_reimport_is_lossless(short_episode: Path, tmp_path: Path, suffix: str) -> None:
    log = tmp_path / f"export{suffix}"
    assert export_can_log(short_episode, log) == 1815
    again = import_can_log_report(log, tmp_path / "again.h5", DBC)
    assert validate_episode(again.path) == []
    assert again.frames == {"can1": 1403, "can2": 412}
    for channel in again.frames:
        before, after = raw_stream(short_episode, channel), raw_stream(again.path, channel)
        for column in ("id", "extended", "dlc", "data"):
            assert np.array_equal(before[column], after[column]), column
        # These formats keep microseconds; the recording's timestamps are whole microseconds.
        assert np.abs(before["t_ns"] - after["t_ns"]).max() <= 500


def test_export_one_channel(short_episode: Path, tmp_path: Path) -> None:
    log = tmp_path / "can2.log"
    assert export_can_log(short_episode, log, channel="can2") == 412
    messages = list(can.LogReader(log))
    assert {m.channel for m in messages} == {"can2"}
    with pytest.raises(ExcapError, match="no CAN channel 'can7'"):
        export_can_log(short_episode, tmp_path / "none.log", channel="can7")


@pytest.mark.slow
def test_heavy_vehicle_import(tmp_path: Path) -> None:
    report = import_can_log_report(HEAVY, tmp_path / "heavy.h5", DBC, machine_kind="wheel_loader", site="demo")
    direct = frames_by_channel(HEAVY)
    assert report.frames == {name: len(msgs) for name, msgs in direct.items()}
    assert sum(report.frames.values()) == 150411
    assert report.decoded + report.unknown + report.undecodable == 150411
    assert report.dm1 == 10
    assert validate_episode(report.path) == []
    with h5py.File(report.path, "r") as handle:
        assert handle.attrs["machine_kind"] == "wheel_loader" and handle.attrs["site"] == "demo"
        for channel, messages in direct.items():
            assert handle[f"can/{channel}/id"][()].tolist() == [m.arbitration_id for m in messages]
            assert handle[f"can/{channel}/extended"][()].tolist() == [m.is_extended_id for m in messages]
        assert not handle["can/can9/extended"][()].any()  # channel 9 carries 11-bit frames
        speed = handle["can/can1/decoded/EEC1/EngineSpeed"][()]
        assert np.all((speed >= 0) & (speed <= ENGINE_SPEED_MAX))
        kinds = handle["events/kind"].asstr()[()]
        details = [json.loads(d) for d, k in zip(handle["events/detail"].asstr()[()], kinds, strict=True)
                   if k == "dm1"]
    assert len(details) == 10
    assert all(d["source_address"] == 0x2F and d["dtcs"] == [] and d["channel"] == "can1" for d in details)


def run_excap(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(excap_command(*args), capture_output=True, text=True, cwd=REPO, timeout=120)


def test_cli_import_and_export(tmp_path: Path) -> None:
    episode = tmp_path / "short.h5"
    result = run_excap("can", "import", str(SHORT), "--out", str(episode), "--dbc", str(DBC),
                       "--set", "machine_id=css-demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(episode)
    assert "1815 frames" in result.stderr
    assert validate_episode(episode) == []
    with h5py.File(episode, "r") as handle:
        assert handle.attrs["machine_id"] == "css-demo"
        assert "EEC1" in handle["can/can1/decoded"]

    log = tmp_path / "short.asc"
    result = run_excap("can", "export", str(episode), "--out", str(log))
    assert result.returncode == 0, result.stderr
    assert len(list(can.LogReader(log))) == 1815
