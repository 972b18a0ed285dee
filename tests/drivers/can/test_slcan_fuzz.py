"""Fuzzing SLCAN input: python-can's `slcan` interface reads a real pseudo-terminal whose other end (this test)
writes random and mutated SLCAN lines. The CAN capture reading that bus, recording into a real episode, must
neither die nor take the adapter for lost: malformed lines are counted as bad frames, and a valid frame sent
after them is still recorded."""

import os
import pty
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import can
import h5py
import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.drivers.base import Health
from excap.drivers.can.bus_config import CanBusConfig
from excap.drivers.can.decoder import FrameDecoder
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import control_spec
from excap.episode.validation import validate_episode
from excap.record.can_capture import CanCapture
from excap.record.recorder import Recorder, RecorderConfig
from excap.schemas import schema_file
from tests.support.fuzzing import fuzz_settings, tried
from tests.support.waiting import wait_for

SENTINEL_ID = 0x18FFEE42  # a J1939 id in no DBC of the project
FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)


@dataclass
class SlcanRig:
    """A capture of an slcan bus on a pty whose master end this test holds, recording into an episode."""

    master: int
    capture: CanCapture
    recorder: Recorder
    seen: list[can.Message] = field(default_factory=list)
    sentinels: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view):]

    def drain_commands(self) -> None:
        """Read what python-can wrote to the adapter (bit rate, open), so the pty never fills up."""
        os.set_blocking(self.master, False)
        try:
            while os.read(self.master, 4096):
                pass
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(self.master, True)

    def send_sentinel(self) -> None:
        """A valid frame after whatever came before; wait until the capture has recorded it."""
        data = len(self.sentinels).to_bytes(8, "big")
        self.sentinels.append(data)
        self.write(f"\rT{SENTINEL_ID:08X}8{data.hex().upper()}\r".encode())
        wait_for(lambda: any(m.arbitration_id == SENTINEL_ID and bytes(m.data) == data for m in list(self.seen)),
                 timeout=10, message="the valid frame after the fuzzed lines")


class Seen(can.Listener):
    def __init__(self, messages: list[can.Message]) -> None:
        self.messages = messages

    def on_message_received(self, msg: can.Message) -> None:
        self.messages.append(msg)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlcanRig]:
    master, slave = pty.openpty()
    tty.setraw(slave)
    out = tmp_path_factory.mktemp("slcan_fuzz")
    recorder = Recorder(RecorderConfig(out, journal_interval_s=0.05, h5_interval_s=0.2),
                        EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="x",
                                        control_pattern="iso"))
    recorder.add_stream(control_spec(["boom"]))
    config = CanBusConfig(name="can0", interface="slcan", channel=os.ttyname(slave), bitrate=500000,
                          reconnect_interval_s=0.05, extra={"sleep_after_open": 0, "tty_baudrate": 115200})
    with recorder:
        capture = CanCapture.from_config(recorder, config, FrameDecoder(schema_file("can/excavator_j1939.dbc")))
        rig = SlcanRig(master, capture, recorder)
        capture.add_listener(Seen(rig.seen))
        capture.start()
        try:
            yield rig
        finally:
            capture.stop()
    os.close(master)
    os.close(slave)


@st.composite
def valid_line(draw: st.DrawFn) -> bytes:
    """One SLCAN frame as an adapter sends it: standard / extended, data / remote, classic / FD."""
    kind = draw(st.sampled_from("tTrRdDbB"))
    extended = kind in "TRDB"
    ident = draw(st.integers(0, 2**29 - 1 if extended else 0x7FF))
    text = f"{kind}{ident:08X}" if extended else f"{kind}{ident:03X}"
    if kind in "tTrR":
        length = draw(st.integers(0, 8))
        text += str(length)
    else:
        code = draw(st.integers(0, 15))
        length = FD_LENGTHS[code]
        text += f"{code:X}"
    if kind not in "rR":
        text += draw(st.binary(min_size=length, max_size=length)).hex().upper()
    return text.encode()


@st.composite
def mutated_line(draw: st.DrawFn) -> bytes:
    line = bytearray(draw(valid_line()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(line) - 1)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "cut"]))
        if kind == "replace" and line:
            line[at] = draw(st.sampled_from(b"-+_ 0F9G\x07\xff\xc3z"))
        elif kind == "insert":
            line[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and line:
            del line[at]
        elif kind == "cut":
            del line[at:]
    return bytes(line)


@st.composite
def odd_fields_line(draw: st.DrawFn) -> bytes:
    """Fields that Python's int() still parses: signs, spaces, underscores; any DLC digit, any data length."""
    kind = draw(st.sampled_from("tTrRdDbBx"))
    width = 8 if kind in "TRDBx" else 3
    ident = draw(st.from_regex(rf"[-+ _]?[0-9A-F]{{{width - 1}}}" if draw(st.booleans()) else rf"[0-9A-F]{{{width}}}",
                               fullmatch=True))
    dlc = draw(st.sampled_from("0123456789ABCDEF"))
    return f"{kind}{ident}{dlc}{draw(st.binary(max_size=20)).hex().upper()}".encode()


LINES = st.lists(st.one_of(valid_line(), mutated_line(), odd_fields_line(), st.binary(max_size=40),
                           st.from_regex(rb"[tTrRdDbBxX][-+_ 0-9A-Fa-f]{0,30}", fullmatch=True)),
                 min_size=1, max_size=12)


@fuzz_settings(200)
@given(lines=LINES, terminator=st.sampled_from([b"\r", b"\x07"]))
def test_random_and_mutated_slcan_lines_never_stop_the_capture(rig: SlcanRig, lines: list[bytes],
                                                               terminator: bytes) -> None:
    tried("SLCAN lines through python-can over a pty")
    rig.drain_commands()
    rig.write(b"".join(line + terminator for line in lines))
    rig.send_sentinel()
    assert rig.capture.health == Health.OK
    assert not rig.recorder.fault


def test_lines_that_broke_the_capture_are_counted_as_bad_frames(rig: SlcanRig) -> None:
    """Found by the fuzzing: a signed id reached the recorder and stopped the recording (uint32 overflow); a
    DLC beyond 8 was stored on a classic channel; bytes that are not UTF-8 or a field int() cannot parse made
    the capture report the adapter lost and reopen it."""
    hostile = [b"t-123ABCDEF", b"T-12345673AABBCC", b"t1239001122334455667788", b"d1239" + b"00" * 12,
               b"t12\xc3\x28", b"t12G1AA", b"T1234"]
    before = rig.capture.counters.bad_frames
    rig.write(b"".join(line + b"\r" for line in hostile))
    rig.send_sentinel()
    assert rig.capture.counters.bad_frames - before == len(hostile)
    assert rig.capture.health == Health.OK and not rig.recorder.fault


def test_the_episode_after_fuzzing_holds_every_valid_frame_and_no_fault(rig: SlcanRig) -> None:
    """Runs after the fuzzing (same module rig): the recording was never interrupted."""
    rig.send_sentinel()
    path = rig.recorder.stop()
    assert not rig.recorder.fault
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        ids, data = f["can/can0/id"][()], f["can/can0/data"][()]
        kinds = list(f["events/kind"].asstr()[()])
        assert (f["can/can0/dlc"][()] <= 8).all()
    recorded = [bytes(row) for ident, row in zip(ids, data, strict=True) if ident == SENTINEL_ID]
    assert recorded == rig.sentinels
    assert "fault" not in kinds and "reconnect" not in kinds
    assert rig.capture.counters.reconnects == 0
    assert Path(path).is_file()
