"""DM1 decoding, the DM1 monitor, and DM1 events recorded by the CAN capture."""

import json
from typing import Any

import can
import pytest

from capture_node.can_capture import CanCapture
from drivers.can.dm1 import DM1_PGN, Dm1Monitor, Dtc, decode_dm1
from drivers.can.j1939 import J1939Id
from tests.drivers.can.test_j1939_tp import dm1_payload
from tests.support.j1939 import bam_frames
from tests.support.requirements import require_shared_data


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


class _FakeStream:
    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def put(self, row: tuple[Any, ...]) -> bool:
        self.rows.append(row)
        return True


class _FakeRecorder:
    def __init__(self) -> None:
        self.streams: dict[str, _FakeStream] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    def add_stream(self, spec: Any) -> _FakeStream:
        return self.streams.setdefault(spec.path, _FakeStream())

    def event(self, kind: str, t_ns: int | None = None, **detail: Any) -> None:
        self.events.append((kind, detail))


def test_capture_records_dm1_events() -> None:
    recorder = _FakeRecorder()
    capture = CanCapture(recorder, "can0", None, None, "virtual")  # type: ignore[arg-type]
    frames = [(0x0CF00400, bytes(8)), *bam_frames(DM1_PGN, 0x00, dm1_payload()), (0x123, bytes(2))]
    for ident, data in frames:
        capture.on_frame(can.Message(arbitration_id=ident, data=data, is_extended_id=ident > 0x7FF))
    assert len(recorder.streams["can/can0"].rows) == len(frames)
    dm1_events = [detail for kind, detail in recorder.events if kind == "dm1"]
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
