"""CanCapture on real python-can buses: `virtual` buses in this process and `slcan` over a pseudo-terminal.

The slcan adapter is tests/support/slcan_peer.py, a separate process holding the pty master, so
killing it makes the tty vanish exactly like an unplugged USB adapter.
"""

import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import can
import cantools
import h5py
import pytest
from can.interfaces.virtual import VirtualBus

from excap.core.errors import DriverError
from excap.drivers.base import Health
from excap.drivers.can.bus_config import CanBusConfig, CanFilter, open_bus
from excap.drivers.can.decoder import FrameDecoder
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import control_spec
from excap.episode.validation import validate_episode
from excap.record.can_capture import CAN_ERR_BUSOFF, CAN_ERR_CNT, CAN_ERR_CRTL, CAN_ERR_RESTARTED, CanCapture
from excap.record.recorder import Recorder, RecorderConfig
from excap.record.switch import EpisodeSwitch
from tests.support.waiting import wait_for

PEER = Path(__file__).resolve().parents[1] / "support" / "slcan_peer.py"


def metadata() -> EpisodeMetadata:
    return EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="x", control_pattern="iso")


def recorder_for(tmp_path: Path) -> Recorder:
    """A recorder with the control stream every valid episode has (empty here: only CAN is under test)."""
    recorder = Recorder(RecorderConfig(tmp_path, journal_interval_s=0.05, h5_interval_s=0.2), metadata())
    recorder.add_stream(control_spec(["boom"]))
    return recorder


def virtual_config(**overrides) -> CanBusConfig:
    return CanBusConfig(**{"name": "can0", "interface": "virtual", "channel": f"excap-test-{uuid.uuid4().hex}",
                           **overrides})


def events(path: Path) -> list[tuple[str, dict]]:
    with h5py.File(path, "r") as f:
        kinds = [k.decode() if isinstance(k, bytes) else k for k in f["events/kind"][()]]
        details = [json.loads(d) for d in f["events/detail"][()]]
    return list(zip(kinds, details, strict=True))


def frames(path: Path, channel: str = "can0") -> list[tuple[int, bool, int, bytes]]:
    with h5py.File(path, "r") as f:
        group = f[f"can/{channel}"]
        assert (group["t_device_ns"][()] >= 0).all()  # 0 only for frames the capture sent itself
        return [(int(i), bool(e), int(n), bytes(d[:n]))
                for i, e, n, d in zip(group["id"][()], group["extended"][()], group["dlc"][()], group["data"][()],
                                      strict=True)]


SENT = [
    can.Message(arbitration_id=0x123, data=b"\x01\x02", is_extended_id=False),
    can.Message(arbitration_id=0x18FEF100, data=bytes(range(8)), is_extended_id=True),
    can.Message(arbitration_id=0x7FF, data=b"", is_extended_id=False),
    can.Message(arbitration_id=0x000, data=b"\xff" * 8, is_extended_id=False),
    can.Message(arbitration_id=0x1FFFFFFF, data=b"\xaa\x55\x00", is_extended_id=True),
]


def expected(messages: list[can.Message]) -> list[tuple[int, bool, int, bytes]]:
    return [(m.arbitration_id, m.is_extended_id, m.dlc, bytes(m.data)) for m in messages]


# -- virtual buses ----------------------------------------------------------------------------


def test_virtual_frames_reach_the_episode_exactly(tmp_path):
    config = virtual_config()
    with can.Bus(interface="virtual", channel=config.channel) as machine, recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, config)
        capture.start()
        for msg in SENT:
            machine.send(msg)
        wait_for(lambda: capture.frames == len(SENT), message="all frames captured")
        capture.stop()
        assert capture.health == Health.STOPPED and capture.bus is None
    path = recorder.paths.final
    assert frames(path) == expected(SENT)
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert f["can/can0"].attrs["interface"] == "virtual"



def test_dbc_from_the_configuration_decodes_frames(tmp_path):
    dbc = Path(__file__).resolve().parents[2] / "schemas" / "can" / "excavator_j1939.dbc"
    config = CanBusConfig.from_dict({"name": "can0", "interface": "virtual", "channel": f"excap-{uuid.uuid4().hex}",
                                     "dbc": str(dbc)}, "cans[0]")
    eec1 = cantools.database.load_file(str(dbc), strict=False).get_message_by_name("EEC1")
    payload = eec1.encode({s.name: 0 for s in eec1.signals} | {"EngSpeed": 1500.0}, strict=False)
    with can.Bus(interface="virtual", channel=config.channel) as machine, recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, config)
        capture.start()
        machine.send(can.Message(arbitration_id=eec1.frame_id, data=payload, is_extended_id=True))
        wait_for(lambda: capture.frames == 1, message="EEC1 captured")
        capture.stop()
    with h5py.File(recorder.paths.final, "r") as f:
        assert f["can/can0"].attrs["dbc"] == str(dbc)
        assert f["can/can0/decoded/EEC1/EngSpeed"][()].tolist() == [1500.0]
    assert validate_episode(recorder.paths.final) == []

def test_filters_drop_what_they_should(tmp_path):
    config = virtual_config(filters=[CanFilter(can_id=0x100, can_mask=0x700, extended=False),
                                     CanFilter(can_id=0x00FEF100, can_mask=0x00FFFF00, extended=True)])
    dropped = [
        can.Message(arbitration_id=0x200, data=b"\x01", is_extended_id=False),
        can.Message(arbitration_id=0x100, data=b"\x02", is_extended_id=True),  # right id, wrong format
        can.Message(arbitration_id=0x18FEF200, data=b"\x03", is_extended_id=True),
    ]
    kept = [
        can.Message(arbitration_id=0x100, data=b"\x04", is_extended_id=False),
        can.Message(arbitration_id=0x1AB, data=b"\x05", is_extended_id=False),
        can.Message(arbitration_id=0x18FEF1FE, data=b"\x06", is_extended_id=True),
    ]
    with can.Bus(interface="virtual", channel=config.channel) as machine, recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, config)
        capture.start()
        for msg in [dropped[0], kept[0], dropped[1], kept[1], dropped[2], kept[2]]:
            machine.send(msg)
        # The virtual bus delivers in order, so once the last kept frame is in, every dropped one was seen.
        wait_for(lambda: capture.frames == len(kept), message="kept frames")
        capture.stop()
    assert frames(recorder.paths.final) == expected(kept)


def test_socketcan_error_frames_become_bus_state_events(tmp_path):
    config = virtual_config()
    error_frames = [
        can.Message(arbitration_id=0x080, data=bytes(8), is_error_frame=True),  # bus error only
        can.Message(arbitration_id=CAN_ERR_CRTL | CAN_ERR_CNT, data=bytes([0, 0x20, 0, 0, 0, 0, 130, 7]),
                    is_error_frame=True),
        can.Message(arbitration_id=CAN_ERR_BUSOFF, data=bytes(8), is_error_frame=True),
        can.Message(arbitration_id=CAN_ERR_RESTARTED, data=bytes(8), is_error_frame=True),
        can.Message(arbitration_id=CAN_ERR_CRTL, data=bytes([0, 0x10, 0, 0, 0, 0, 0, 0]), is_error_frame=True),
        can.Message(arbitration_id=CAN_ERR_CRTL, data=bytes([0, 0x40, 0, 0, 0, 0, 0, 0]), is_error_frame=True),
    ]
    with can.Bus(interface="virtual", channel=config.channel) as machine, recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, config)
        capture.start()
        machine.send(SENT[0])
        for msg in error_frames:
            machine.send(msg)
        machine.send(SENT[1])
        wait_for(lambda: capture.error_frames == len(error_frames) and capture.frames == 2,
                 message="error frames")
        capture.stop()
    path = recorder.paths.final
    assert frames(path) == expected(SENT[:2])  # error frames are events, not raw frames
    kinds = [(kind, detail) for kind, detail in events(path) if kind.startswith("can_")]
    assert [kind for kind, _ in kinds] == [
        "can_error_frame",
        "can_error_frame", "can_error_passive",
        "can_error_frame", "can_bus_off",
        "can_error_frame", "can_restarted",
        "can_error_frame", "can_error_passive",
        "can_error_frame", "can_error_active",
    ]
    assert kinds[1][1] == {"channel": "can0", "id": CAN_ERR_CRTL | CAN_ERR_CNT, "data": "0020000000008207",
                           "tx_errors": 130, "rx_errors": 7}
    assert kinds[2][1] == {"channel": "can0", "source": "error_frame", "rx": False, "tx": True}
    assert kinds[8][1]["rx"] is True
    assert validate_episode(path) == []


class StatefulVirtualBus(VirtualBus):
    """A virtual bus whose controller state the test sets, like a pcan/ixxat adapter reporting it."""

    controller_state = can.BusState.ACTIVE

    @property
    def state(self) -> can.BusState:
        return self.controller_state


def test_bus_state_changes_become_events(tmp_path):
    bus = StatefulVirtualBus(channel=f"excap-test-{uuid.uuid4().hex}")
    try:
        with recorder_for(tmp_path) as recorder:
            capture = CanCapture(recorder, "can1", bus, None, interface="virtual")
            capture.start()
            for state in (can.BusState.PASSIVE, can.BusState.ERROR, can.BusState.ACTIVE, can.BusState.PASSIVE,
                          can.BusState.ACTIVE):
                bus.controller_state = state
                wait_for(lambda state=state: capture.bus_state == state, message=f"state {state}")
            capture.stop()
        assert capture.bus is bus  # the caller's bus stays the caller's
    finally:
        bus.shutdown()
    changes = [(kind, detail) for kind, detail in events(recorder.paths.final) if kind.startswith("can_")]
    assert [kind for kind, _ in changes] == ["can_error_passive", "can_bus_off", "can_restarted",
                                             "can_error_passive", "can_error_active"]
    assert all(detail == {"channel": "can1", "source": "bus_state"} for _, detail in changes)


class FailingVirtualBus(VirtualBus):
    """A virtual bus whose receive starts failing on demand, counting the attempts."""

    failing = False
    attempts = 0

    def _recv_internal(self, timeout):
        if self.failing:
            self.attempts += 1
            raise can.CanOperationError("adapter gone")
        return super()._recv_internal(timeout)


def test_failing_receive_records_one_fault_and_disconnects(tmp_path):
    bus = FailingVirtualBus(channel=f"excap-test-{uuid.uuid4().hex}")
    try:
        with recorder_for(tmp_path) as recorder:
            capture = CanCapture(recorder, "can0", bus, None, interface="virtual")
            capture.start()
            bus.failing = True
            wait_for(lambda: capture.health == Health.DISCONNECTED, message="disconnected")
            with pytest.raises(DriverError, match=r"^CAN can0: cannot send, bus is disconnected$"):
                capture.send(SENT[0])
            capture.stop()
        assert bus.attempts == 1  # no busy loop on a dead bus
    finally:
        bus.shutdown()
    faults = [detail for kind, detail in events(recorder.paths.final) if kind == "fault"]
    assert faults == [{"channel": "can0", "error": "CanOperationError: adapter gone", "reconnecting": False}]
    assert validate_episode(recorder.paths.final) == []


def test_from_config_fails_clearly_when_the_bus_cannot_open(tmp_path):
    config = CanBusConfig(name="can0", interface="slcan", channel=str(tmp_path / "ttyNone"),
                          extra={"sleep_after_open": 0})
    with recorder_for(tmp_path) as recorder, pytest.raises(DriverError, match=r"^CAN can0: cannot open slcan"):
        CanCapture.from_config(recorder, config)


# -- slcan over a pseudo-terminal ---------------------------------------------------------------


class SlcanPeer:
    """The slcan_peer.py process: its tty path, and every command it received from the host."""

    def __init__(self, link: Path | None = None) -> None:
        args = [sys.executable, str(PEER)] + (["--link", str(link)] if link else [])
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.commands: list[str] = []
        self.tty = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(self._ready.is_set, message="slcan peer tty")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "PTY":
                self.tty = rest
                self._ready.set()
            elif kind == "CMD":
                self.commands.append(rest)

    def send(self, *frames: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{frame}\n" for frame in frames))
        self.process.stdin.flush()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=20)
        self._reader.join(timeout=20)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def slcan_peer():
    peers: list[SlcanPeer] = []

    def start(link: Path | None = None) -> SlcanPeer:
        peers.append(SlcanPeer(link))
        return peers[-1]

    yield start
    for peer in peers:
        peer.close()


def slcan_config(channel: str, **overrides) -> CanBusConfig:
    return CanBusConfig(**{"name": "can0", "interface": "slcan", "channel": channel, "bitrate": 500000,
                           "extra": {"sleep_after_open": 0, "tty_baudrate": 115200}, **overrides})


def test_slcan_frames_both_ways(tmp_path, slcan_peer):
    peer = slcan_peer()
    with recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, slcan_config(peer.tty))
        capture.start()
        wait_for(lambda: "O" in peer.commands, message="slcan channel opened")
        assert peer.commands[peer.commands.index("O") - 2] == "S6"  # 500 kbit/s before opening
        peer.send("t1232ABCD", "T18FEF1008000102030405060712AB", "t7FF0", "T1FFFFFFF3AA5500")
        wait_for(lambda: capture.frames == 4, message="slcan frames captured")
        capture.send(can.Message(arbitration_id=0x321, data=b"\x01\x02\x03", is_extended_id=False))
        capture.send(can.Message(arbitration_id=0x18EA00FE, data=b"\x00\xee\x00", is_extended_id=True))
        wait_for(lambda: "T18EA00FE300EE00" in peer.commands, message="frames at the peer")
        assert [c for c in peer.commands if c[:1] in ("t", "T")] == ["t3213010203", "T18EA00FE300EE00"]
        capture.stop()
    assert frames(recorder.paths.final) == [
        (0x123, False, 2, b"\xab\xcd"),
        (0x18FEF100, True, 8, bytes(range(8))),
        (0x7FF, False, 0, b""),
        (0x1FFFFFFF, True, 3, b"\xaa\x55\x00"),
        # what the capture sent is on the bus too, and so in the episode:
        (0x321, False, 3, b"\x01\x02\x03"),
        (0x18EA00FE, True, 3, b"\x00\xee\x00"),
    ]
    with h5py.File(recorder.paths.final, "r") as f:
        assert (f["can/can0/t_device_ns"][:4] > 0).all() and not f["can/can0/t_device_ns"][4:].any()
    assert validate_episode(recorder.paths.final) == []


def test_slcan_device_gone_is_a_fault_not_a_crash(tmp_path, slcan_peer):
    peer = slcan_peer()
    with recorder_for(tmp_path) as recorder:
        capture = CanCapture.from_config(recorder, slcan_config(peer.tty, reconnect_interval_s=0.05))
        capture.start()
        wait_for(lambda: "O" in peer.commands, message="slcan channel opened")
        peer.send("t1001AA")
        wait_for(lambda: capture.frames == 1, message="first frame")
        peer.kill()
        wait_for(lambda: capture.health == Health.DISCONNECTED, message="disconnected")
        # Reopening keeps failing while the device is gone; reader and recorder keep running meanwhile.
        assert capture._reader is not None and capture._reader.running and recorder.running
        with pytest.raises(DriverError):
            capture.send(SENT[0])
        capture.stop()
    path = recorder.paths.final
    assert path.exists() and validate_episode(path) == []
    assert frames(path) == [(0x100, False, 1, b"\xaa")]
    faults = [detail for kind, detail in events(path) if kind == "fault"]
    assert len(faults) == 1 and faults[0]["channel"] == "can0" and faults[0]["reconnecting"] is True
    assert "reconnect" not in [kind for kind, _ in events(path)]


def test_slcan_adapter_plugged_back_in_reconnects(tmp_path, slcan_peer):
    link = tmp_path / "ttyCAN0"
    first = slcan_peer(link)
    with recorder_for(tmp_path / "episodes") as recorder:
        capture = CanCapture.from_config(recorder, slcan_config(str(link), reconnect_interval_s=0.05))
        capture.start()
        wait_for(lambda: "O" in first.commands, message="slcan channel opened")
        first.send("t1001AA")
        wait_for(lambda: capture.frames == 1, message="frame before unplugging")
        first.kill()
        wait_for(lambda: capture.health == Health.DISCONNECTED, message="disconnected")
        second = slcan_peer(link)
        wait_for(lambda: capture.health == Health.OK and "O" in second.commands, message="reconnected")
        assert capture.counters.reconnects == 1
        second.send("T000002002BBCC")
        wait_for(lambda: capture.frames == 2, message="frame after reconnecting")  # before our own send
        capture.send(can.Message(arbitration_id=0x42, data=b"\x42", is_extended_id=False))
        wait_for(lambda: "t042142" in second.commands, message="frame sent after reconnecting")
        capture.stop()
    path = recorder.paths.final
    assert frames(path) == [(0x100, False, 1, b"\xaa"), (0x200, True, 2, b"\xbb\xcc"), (0x42, False, 1, b"\x42")]
    kinds = [kind for kind, _ in events(path) if kind in ("fault", "reconnect")]
    assert kinds == ["fault", "reconnect"]
    assert validate_episode(path) == []


def test_slcan_unsupported_bitrate_is_a_driver_error(slcan_peer):
    peer = slcan_peer()
    pattern = r"^CAN can0: cannot open slcan channel '.*' \(CanInitializationError: Invalid bitrate, choose one of"
    with pytest.raises(DriverError, match=pattern):
        open_bus(slcan_config(peer.tty, bitrate=123456))



class GatedDecoder(FrameDecoder):
    """The real decoder, held at its first frame until the test lets it go."""

    def __init__(self, dbc: Path) -> None:
        super().__init__(dbc)
        self.entered = threading.Event()
        self.release = threading.Event()

    def decode(self, *args, **kwargs):
        self.entered.set()
        assert self.release.wait(10)
        return super().decode(*args, **kwargs)


def test_a_frame_opening_a_decoded_stream_while_the_episode_stops_is_recorded(tmp_path):
    """The stop waits for the frame in hand, and that frame registers a new decoded stream with the switch:
    neither may wait for the other, and the frame (captured before the cut) belongs to the episode."""
    dbc = Path(__file__).resolve().parents[2] / "schemas" / "can" / "excavator_j1939.dbc"
    eec1 = cantools.database.load_file(str(dbc), strict=False).get_message_by_name("EEC1")
    payload = eec1.encode({s.name: 0 for s in eec1.signals} | {"EngSpeed": 1234.0}, strict=False)
    decoder = GatedDecoder(dbc)
    switch = EpisodeSwitch(tmp_path)
    switch.stream(control_spec(["boom"]))
    flushing = threading.Event()
    with can.Bus(interface="virtual", channel=f"excap-test-{uuid.uuid4().hex}") as bus:
        capture = CanCapture(switch, "can0", bus, decoder, "virtual")
        switch.flush.append(lambda: (flushing.set(), capture.flush()))
        switch.start(metadata())
        frame = threading.Thread(target=capture.on_frame, daemon=True,
                                 args=(can.Message(arbitration_id=eec1.frame_id, data=payload, is_extended_id=True),))
        frame.start()
        assert decoder.entered.wait(10)
        results = []
        stopper = threading.Thread(target=lambda: results.append(switch.stop()), daemon=True)
        stopper.start()
        wait_for(flushing.is_set, message="the stop waits for the frame in hand")
        decoder.release.set()
        stopper.join(10)
        frame.join(10)
        assert not stopper.is_alive() and not frame.is_alive()
    path = results[0].path
    with h5py.File(path, "r") as f:
        assert f["can/can0/decoded/EEC1/EngSpeed"][()].tolist() == [1234.0]
    assert validate_episode(path) == []
