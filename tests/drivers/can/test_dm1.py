"""DM1 decoding, the DM1 monitor, and DM1 events recorded by the CAN capture."""

import json
import uuid
from pathlib import Path

import can
import h5py
import pytest

from excap.drivers.can.dm1 import DM1_PGN, Dm1Monitor, Dtc, decode_dm1
from excap.drivers.can.j1939 import J1939Id
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import control_spec
from excap.episode.validation import validate_episode
from excap.record.can_capture import CanCapture
from excap.record.recorder import Recorder, RecorderConfig
from tests.support.j1939 import bam_frames, dm1_payload
from tests.support.requirements import require_shared_data
from tests.support.waiting import wait_for


def test_dtc_fields() -> None:
    # SPN 520193 = 0x7F001: low byte 01, middle F0, top three bits 111 above FMI 31; CM 1, count 126.
    assert Dtc.from_bytes(bytes([0x01, 0xF0, 0xFF, 0xFE])) == Dtc(520193, 31, 126, 1)
    assert Dtc.from_bytes(bytes([0xBE, 0x00, 0x02, 0x05])) == Dtc(190, 2, 5, 0)


def test_single_frame_lamps_and_padding() -> None:
    # Red stop lamp on and flashing fast, one DTC, padded with 0xFF.
    decoded = decode_dm1(bytes([0x10, 0xDF, 0x64, 0x00, 0x03, 0x01, 0xFF, 0xFF]))
    assert decoded.lamps == {"malfunction": "off", "red_stop": "on", "amber_warning": "off", "protect": "off"}
    assert decoded.flash["red_stop"] == "fast" and decoded.flash["malfunction"] == "off"
    assert decoded.dtcs == (Dtc(100, 3, 1, 0),)
    assert decode_dm1(bytes([0x00, 0xFF, 0, 0, 0, 0, 0xFF, 0xFF])).dtcs == ()  # "no active fault"
    with pytest.raises(ValueError, match="lamp-status"):
        decode_dm1(b"\x00")


def test_detail_is_json() -> None:
    detail = json.loads(json.dumps(decode_dm1(dm1_payload()).detail()))
    assert detail["dtcs"][0] == {"spn": 190, "fmi": 2, "occurrence_count": 5, "conversion_method": 0}
    assert len(detail["dtcs"]) == 3


def test_monitor_single_frame_and_bam() -> None:
    monitor = Dm1Monitor()
    single = J1939Id(6, DM1_PGN, 0x2F).arbitration_id()
    found = monitor.feed(single, bytes([0x04, 0xFF, 0xBE, 0x00, 0x02, 0x05, 0xFF, 0xFF]), 0)
    assert found is not None and found[0] == 0x2F and found[1].dtcs == (Dtc(190, 2, 5, 0),)
    results = [monitor.feed(ident, data, i * 50_000_000) for i, (ident, data) in
               enumerate(bam_frames(DM1_PGN, 0x00, dm1_payload()))]
    assert results[:-1] == [None] * (len(results) - 1)
    assert results[-1] is not None and results[-1][0] == 0x00 and len(results[-1][1].dtcs) == 3
    other = bam_frames(0xFEEC, 0x00, b"not a diagnostic message")
    assert all(monitor.feed(ident, data, 10**9 + i) is None for i, (ident, data) in enumerate(other))


def test_capture_records_dm1_events(tmp_path: Path) -> None:
    """A DM1 sent over BAM on a virtual bus, captured into a real episode: one `dm1` event with its DTCs."""
    channel = f"excap-dm1-{uuid.uuid4().hex}"
    recorder = Recorder(RecorderConfig(tmp_path, journal_interval_s=0.05, h5_interval_s=0.2),
                        EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="x",
                                        control_pattern="iso"))
    recorder.add_stream(control_spec(["boom"]))
    frames = [(0x0CF00400, bytes(8)), *bam_frames(DM1_PGN, 0x00, dm1_payload()), (0x123, bytes(2))]
    with recorder, can.Bus(interface="virtual", channel=channel) as machine, \
            can.Bus(interface="virtual", channel=channel) as bus:
        capture = CanCapture(recorder, "can0", bus, None, "virtual")
        capture.start()
        for ident, data in frames:
            machine.send(can.Message(arbitration_id=ident, data=data, is_extended_id=ident > 0x7FF))
        wait_for(lambda: capture.frames == len(frames), message="every frame captured")
        capture.stop()
    path = recorder.paths.final
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert f["can/can0/id"][()].tolist() == [ident for ident, _ in frames]
        events = [(kind, json.loads(detail)) for kind, detail in
                  zip(f["events/kind"].asstr()[()], f["events/detail"].asstr()[()], strict=True)]
    dm1_events = [detail for kind, detail in events if kind == "dm1"]
    assert len(dm1_events) == 1
    assert dm1_events[0]["channel"] == "can0" and dm1_events[0]["source_address"] == 0
    assert [d["spn"] for d in dm1_events[0]["dtcs"]] == [190, 520193, 84]


def test_real_dm1_frames() -> None:
    shared = require_shared_data()
    monitor = Dm1Monitor()
    found = []
    for msg in can.LogReader(shared / "css-j1939-heavy-vehicle.MF4"):
        if msg.is_extended_id:
            result = monitor.feed(msg.arbitration_id, bytes(msg.data), round(msg.timestamp * 1e9))
            if result is not None:
                found.append(result)
    assert len(found) == 10
    for source, dm1 in found:
        assert source == 0x2F
        assert dm1.dtcs == ()  # the ECU reports "no active fault"
        assert dm1.lamps == {"malfunction": "not_available", "red_stop": "not_available", "amber_warning": "off",
                             "protect": "not_available"}
