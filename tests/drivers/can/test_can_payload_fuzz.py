"""Fuzzing CAN payload decoding: random ids, lengths and payloads against the project's DBCs, J1939 transport
(BAM) reassembly and DM1 decoding. Never an exception; not-available values are NaN; everything decoded is
within its field's range."""

import math

import cantools
from hypothesis import given
from hypothesis import strategies as st

from excap.drivers.can.decoder import FrameDecoder
from excap.drivers.can.dm1 import DM1_PGN, FLASH_STATES, LAMP_STATES, Dm1Monitor, decode_dm1
from excap.drivers.can.j1939 import J1939Id, not_available_threshold
from excap.drivers.can.j1939_tp import MAX_SIZE, MIN_SIZE, TP_CM_PGN, TP_DT_PGN, BamReassembler
from excap.schemas import schema_file
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.j1939 import bam_frames

DBCS = [schema_file("can/excavator_j1939.dbc"), schema_file("can/j1939_joysticks.dbc")]
DECODER = FrameDecoder(DBCS)
MESSAGES = DECODER.messages
MS = 1_000_000

payloads = st.binary(max_size=64)
any_id = st.integers(0, 2**32 - 1)


@st.composite
def j1939_id(draw: st.DrawFn, pgn: int | None = None) -> int:
    """An extended id: of a DBC message, TP or DM1 (any priority, source and destination), or any 29 bits."""
    if pgn is None:
        choices = [J1939Id.parse(m.frame_id).pgn for m in MESSAGES] + [TP_CM_PGN, TP_DT_PGN, DM1_PGN]
        pgn = draw(st.sampled_from(choices))
    if draw(st.integers(0, 9)) == 0:
        return draw(st.integers(0, 2**29 - 1))
    destination = draw(st.sampled_from([0xFF, draw(st.integers(0, 0xFF))]))
    return J1939Id(draw(st.integers(0, 7)), pgn, draw(st.integers(0, 0xFF)), destination).arbitration_id()


def check_decoded(decoded, arbitration_id: int, is_extended: bool) -> None:
    if decoded is None:
        return
    assert 0 <= decoded.source_address <= 0xFF
    assert decoded.source_address == (arbitration_id & 0xFF if is_extended else 0)
    assert set(decoded.values) == {s.name for s in decoded.message.signals}
    for value in decoded.values.values():
        assert isinstance(value, float) and not math.isinf(value)


@fuzz_settings(600)
@given(frames=st.lists(st.tuples(st.one_of(j1939_id(), any_id), st.booleans(), payloads), min_size=1, max_size=20))
def test_any_frame_decodes_or_is_counted(frames: list[tuple[int, bool, bytes]]) -> None:
    decoder = FrameDecoder(DBCS)
    decoded = 0
    for arbitration_id, is_extended, data in frames:
        tried("CAN payload: any id, length and data against the DBC")
        result = decoder.decode(arbitration_id, is_extended, data)
        check_decoded(result, arbitration_id, is_extended)
        decoded += result is not None
    assert decoded + decoder.unknown + decoder.undecodable == len(frames)


def signal_threshold(signal: cantools.database.can.Signal) -> int | None:
    return None if signal.is_signed else not_available_threshold(signal.length)


@fuzz_settings(800)
@given(data=st.data(), message_index=st.integers(0, len(MESSAGES) - 1))
def test_not_available_and_error_values_are_nan_and_the_rest_is_scaled(data: st.DataObject,
                                                                      message_index: int) -> None:
    """Each signal gets a raw value (packed by cantools): above the J1939 range it must read NaN, else its
    scaled value; the frame's other bytes are random."""
    tried("CAN payload: J1939 ranges against the DBC")
    message = MESSAGES[message_index]
    ident = J1939Id.parse(message.frame_id)  # its own source address: several senders share some PGNs
    arbitration_id = J1939Id(data.draw(st.integers(0, 7)), ident.pgn, ident.source_address,
                             ident.destination_address).arbitration_id()
    raw: dict[str, int] = {}
    for signal in message.signals:
        top = (1 << signal.length) - 1
        lowest = -(1 << (signal.length - 1)) if signal.is_signed else 0
        highest = (1 << (signal.length - 1)) - 1 if signal.is_signed else top
        raw[signal.name] = data.draw(st.one_of(st.integers(lowest, highest), st.just(highest)), label=signal.name)
    payload = bytearray(message.encode(raw, scaling=False, padding=True, strict=False))
    decoded = DECODER.decode(arbitration_id if message.is_extended_frame else message.frame_id,
                             message.is_extended_frame, bytes(payload))
    assert decoded is not None and decoded.message.name == message.name
    check_decoded(decoded, arbitration_id if message.is_extended_frame else message.frame_id,
                  message.is_extended_frame)
    for signal in message.signals:
        value, limit = decoded.values[signal.name], signal_threshold(signal)
        if message.protocol == "j1939" and limit is not None and raw[signal.name] > limit:
            assert math.isnan(value), (message.name, signal.name, raw[signal.name])
        else:
            expected = signal.conversion.raw_to_scaled(raw[signal.name], decode_choices=False)
            assert math.isclose(value, expected, rel_tol=1e-12, abs_tol=1e-9), (signal.name, value, expected)


@st.composite
def transport_traffic(draw: st.DrawFn) -> list[tuple[int, bytes, int]]:
    """Frames a J1939 bus may carry around transport transfers: intact, mutated and stray TP frames, DM1 frames
    of any length, other traffic; time mostly forward, sometimes past T1, sometimes backwards."""
    frames: list[tuple[int, bytes]] = []
    for _ in range(draw(st.integers(0, 4))):
        size = draw(st.integers(MIN_SIZE - 2, MAX_SIZE))
        payload = draw(st.binary(min_size=size, max_size=size)) if size <= 64 else bytes(i % 251 for i in range(size))
        transfer = bam_frames(draw(st.sampled_from([DM1_PGN, 0xFEE5, draw(st.integers(0, 0x3FFFF))])),
                              draw(st.integers(0, 0xFF)), payload)
        if draw(st.booleans()):  # mutate: drop, repeat, swap or corrupt packets, cut the transfer short
            kind = draw(st.sampled_from(["drop", "repeat", "swap", "corrupt", "cut"]))
            at = draw(st.integers(0, len(transfer) - 1))
            if kind == "drop":
                del transfer[at]
            elif kind == "repeat":
                transfer.insert(at, transfer[at])
            elif kind == "swap" and at + 1 < len(transfer):
                transfer[at], transfer[at + 1] = transfer[at + 1], transfer[at]
            elif kind == "corrupt":
                ident, payload = transfer[at]
                transfer[at] = (ident, draw(st.binary(max_size=12)))
            elif kind == "cut":
                del transfer[at:]
        frames.extend(transfer)
    for _ in range(draw(st.integers(0, 12))):  # stray frames anywhere
        stray = (draw(j1939_id(draw(st.sampled_from([TP_CM_PGN, TP_DT_PGN, DM1_PGN])))), draw(st.binary(max_size=12)))
        frames.insert(draw(st.integers(0, len(frames))), stray)
    t_ns, timed = 0, []
    for ident, payload in frames:
        t_ns += draw(st.sampled_from([1 * MS, 50 * MS, 800 * MS, -100 * MS]))
        timed.append((ident, payload, t_ns))
    return timed


@fuzz_settings(600)
@given(frames=transport_traffic())
def test_transport_reassembly_and_dm1_never_raise(frames: list[tuple[int, bytes, int]]) -> None:
    tried("J1939 transport and DM1: mutated and stray frames")
    reassembler = BamReassembler()
    monitor = Dm1Monitor()
    for ident, payload, t_ns in frames:
        message = reassembler.feed(ident, payload, t_ns)
        if message is not None:
            assert MIN_SIZE <= len(message.payload) <= MAX_SIZE
            assert 0 <= message.source_address <= 0xFF and message.t_ns == t_ns
        assert reassembler.open_sessions <= 256
        found = monitor.feed(ident, payload, t_ns)
        if found is not None:
            source, dm1 = found
            assert 0 <= source <= 0xFF
            assert set(dm1.lamps.values()) <= set(LAMP_STATES.values())
            assert set(dm1.flash.values()) <= set(FLASH_STATES.values())
            for dtc in dm1.dtcs:
                assert 0 < dtc.spn < 2**19 and 0 <= dtc.fmi < 32 and 0 <= dtc.occurrence_count < 128
                assert dtc.conversion_method in (0, 1)
    stats = reassembler.stats
    assert min(stats.completed, stats.timeouts, stats.aborts, stats.orphan_packets) >= 0


@fuzz_settings(300)
@given(data=st.data(), senders=st.lists(st.integers(0, 0xFF), min_size=1, max_size=4, unique=True))
def test_intact_transfers_reassemble_among_other_traffic(data: st.DataObject, senders: list[int]) -> None:
    """Interleaved transfers from different senders, with other senders' non-TP traffic in between, all
    come out whole."""
    tried("J1939 transport: interleaved intact transfers")
    payloads = {s: data.draw(st.binary(min_size=MIN_SIZE, max_size=300), label=f"payload {s}") for s in senders}
    queues = {s: bam_frames(DM1_PGN, s, payloads[s]) for s in senders}
    frames: list[tuple[int, bytes]] = []
    while any(queues.values()):
        sender = data.draw(st.sampled_from([s for s in senders if queues[s]]))
        frames.append(queues[sender].pop(0))
        if data.draw(st.integers(0, 3)) == 0:
            frames.append((J1939Id(3, 0xF004, data.draw(st.integers(0, 0xFF))).arbitration_id(), bytes(8)))
    reassembler = BamReassembler()
    monitor = Dm1Monitor()
    done, dm1s = {}, {}
    for index, (ident, payload) in enumerate(frames):
        message = reassembler.feed(ident, payload, index * MS)
        if message is not None:
            done[message.source_address] = message.payload
        found = monitor.feed(ident, payload, index * MS)
        if found is not None:
            dm1s[found[0]] = found[1]
    assert done == payloads
    assert {s: decode_dm1(p) for s, p in payloads.items()} == dm1s
    assert reassembler.open_sessions == 0 and reassembler.stats.aborts == 0


@fuzz_settings(1000)
@given(payload=st.binary(max_size=1800))
def test_dm1_payloads_of_any_length(payload: bytes) -> None:
    tried("DM1: any payload")
    if len(payload) < 2:
        try:
            decode_dm1(payload)
        except ValueError as exc:
            assert "at least the 2 lamp-status bytes" in str(exc)
        else:
            raise AssertionError("a DM1 payload without lamp bytes was accepted")
        return
    dm1 = decode_dm1(payload)
    assert len(dm1.dtcs) <= (len(payload) - 2) // 4
    assert set(dm1.lamps) == set(dm1.flash) == {"malfunction", "red_stop", "amber_warning", "protect"}
