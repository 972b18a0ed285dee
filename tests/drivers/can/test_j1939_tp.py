"""J1939 BAM reassembly: hand-built transfers and the transport frames of a real recording."""

import can
import pytest

from excap.drivers.can.dm1 import DM1_PGN, decode_dm1
from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.j1939_tp import CM_ABORT, CM_BAM, TP_CM_PGN, TP_DT_PGN, BamReassembler, reassemble
from tests.support.j1939 import bam_frames, dm1_payload
from tests.support.requirements import require_shared_data

MS = 1_000_000
EEC1_ID = 0x0CF00400


def timed(frames: list[tuple[int, bytes]], start_ns: int = 0, step_ns: int = 50 * MS) -> list[tuple[int, bytes, int]]:
    return [(ident, data, start_ns + i * step_ns) for i, (ident, data) in enumerate(frames)]


def test_multi_packet_dm1_among_other_traffic() -> None:
    payload = dm1_payload()
    dm1 = bam_frames(DM1_PGN, 0x00, payload)
    other = bam_frames(0xFEEC, 0x17, b"VIN-1234567890ABCDEFG*")  # a second sender's BAM at the same time
    eec1 = (EEC1_ID, bytes([0xF0, 0xFF, 0x7D, 0x40, 0x1F, 0xFF, 0xFF, 0xFF]))
    mixed: list[tuple[int, bytes]] = []
    for index in range(max(len(dm1), len(other))):
        mixed += [eec1, *dm1[index:index + 1], *other[index:index + 1], (0x18FEF100, bytes(8))]
    reassembler = BamReassembler()
    results = [m for ident, data, t in timed(mixed, step_ns=10 * MS) if (m := reassembler.feed(ident, data, t))]

    assert [(m.pgn, m.source_address) for m in results] == [(DM1_PGN, 0x00), (0xFEEC, 0x17)]
    assert results[0].payload == payload
    assert results[1].payload == b"VIN-1234567890ABCDEFG*"
    assert reassembler.stats.completed == 2 and reassembler.stats.aborts == 0 and reassembler.stats.timeouts == 0
    decoded = decode_dm1(results[0].payload)
    assert decoded.lamps["amber_warning"] == "on" and decoded.lamps["malfunction"] == "off"
    assert [(d.spn, d.fmi, d.occurrence_count, d.conversion_method) for d in decoded.dtcs] == [
        (190, 2, 5, 0), (520193, 31, 126, 1), (84, 9, 1, 0)]


@pytest.mark.parametrize("change", ["swap", "drop", "repeat"])
def test_out_of_order_or_missing_packet_aborts(change: str) -> None:
    frames = bam_frames(DM1_PGN, 0x03, dm1_payload() + bytes(10))  # 24 bytes: 4 packets
    if change == "swap":
        frames[2], frames[3] = frames[3], frames[2]
    elif change == "drop":
        del frames[2]
    else:
        frames.insert(2, frames[1])
    reassembler = BamReassembler()
    results = [r for ident, data, t in timed(frames) if (r := reassembler.feed(ident, data, t))]
    assert results == []
    assert reassembler.stats.aborts == 1
    assert reassembler.stats.completed == 0
    assert reassembler.open_sessions == 0


def test_packet_gap_over_t1_times_out() -> None:
    frames = bam_frames(DM1_PGN, 0x03, dm1_payload())
    late = [(ident, data, t + (800 * MS if i >= 2 else 0)) for i, (ident, data, t) in enumerate(timed(frames))]
    reassembler = BamReassembler()
    assert [r for ident, data, t in late if (r := reassembler.feed(ident, data, t))] == []
    assert reassembler.stats.timeouts == 1
    assert reassembler.stats.orphan_packets == 1  # the late packet has no session any more

    slow = timed(frames, step_ns=700 * MS)  # just inside T1
    assert [m.payload for m in reassemble(slow)] == [dm1_payload()]


def test_new_announcement_and_sender_abort_end_the_session() -> None:
    first = bam_frames(DM1_PGN, 0x03, dm1_payload())
    second = bam_frames(DM1_PGN, 0x03, dm1_payload()[:10])
    reassembler = BamReassembler()
    results = [m for ident, data, t in timed(first[:2] + second) if (m := reassembler.feed(ident, data, t))]
    assert [m.payload for m in results] == [dm1_payload()[:10]]
    assert reassembler.stats.aborts == 1

    abort = bytes([CM_ABORT, 3, 0xFF, 0xFF, 0xFF]) + DM1_PGN.to_bytes(3, "little")
    frames = [*first[:2], (J1939Id(7, TP_CM_PGN, 0x03, 0xFF).arbitration_id(), abort), *first[2:]]
    reassembler = BamReassembler()
    assert [r for ident, data, t in timed(frames) if (r := reassembler.feed(ident, data, t))] == []
    assert reassembler.stats.aborts == 1


def test_bad_announcement_is_counted_not_opened() -> None:
    cm_id = J1939Id(7, TP_CM_PGN, 0x03, 0xFF).arbitration_id()
    reassembler = BamReassembler()
    wrong_count = bytes([CM_BAM, 20, 0, 5, 0xFF]) + DM1_PGN.to_bytes(3, "little")  # 20 bytes need 3 packets
    assert reassembler.feed(cm_id, wrong_count, 0) is None
    assert reassembler.stats.aborts == 1 and reassembler.open_sessions == 0


def test_real_recording_transport_frames_reassemble() -> None:
    messages = list(can.LogReader(require_shared_data() / "css-j1939-short.MF4"))
    tp = [m for m in messages if m.is_extended_id and J1939Id.parse(m.arbitration_id).pgn in (TP_CM_PGN, TP_DT_PGN)]
    announcements = [m for m in tp if J1939Id.parse(m.arbitration_id).pgn == TP_CM_PGN and m.data[0] == CM_BAM]
    assert len(tp) > 0, "css-j1939-short.MF4 is documented to hold transport-protocol frames"

    reassembler = BamReassembler()
    results = []
    for msg in messages:
        if msg.is_extended_id:
            found = reassembler.feed(msg.arbitration_id, bytes(msg.data), round(msg.timestamp * 1e9))
            if found is not None:
                results.append(found)
    assert len(results) == len(announcements)
    assert reassembler.stats.aborts == 0 and reassembler.stats.timeouts == 0
    assert reassembler.stats.orphan_packets == 0
    for message, announcement in zip(results, announcements, strict=True):
        size = int.from_bytes(announcement.data[1:3], "little")
        assert message.pgn == int.from_bytes(announcement.data[5:8], "little")
        assert message.source_address == announcement.arbitration_id & 0xFF
        assert len(message.payload) == size
    # Independent check of the first transfer: its data packets, in order, concatenated.
    start = tp.index(announcements[0])
    packets = tp[start + 1:start + 1 + announcements[0].data[3]]
    assert [p.data[0] for p in packets] == list(range(1, len(packets) + 1))
    assert results[0].payload == b"".join(bytes(p.data[1:]) for p in packets)[:len(results[0].payload)]


def test_heavy_vehicle_recording_has_no_transport_frames() -> None:
    """Its DM1 messages are single frames (see test_dm1); nothing for the reassembler there."""
    frames = [(m.arbitration_id, bytes(m.data), round(m.timestamp * 1e9))
              for m in can.LogReader(require_shared_data() / "css-j1939-heavy-vehicle.MF4") if m.is_extended_id]
    pgns = {J1939Id.parse(ident).pgn for ident, _, _ in frames}
    assert not pgns & {TP_CM_PGN, TP_DT_PGN}
    assert list(reassemble(frames)) == []
