"""Dead devices never record silently: a station whose device thread dies mid-recording keeps a valid episode
with a `fault` event while the other streams go on; a joystick lost or failed neutralises the commands at once."""

import contextlib
import json
import os
import threading
import tty
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import can
import h5py
import pytest
import yaml

from excap.core.clock import now_ns, utc_offset_ns
from excap.drivers.base import Health
from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.profiles import load_profile
from excap.drivers.sim.machine import DEFAULT_DBC
from excap.episode.validation import validate_episode
from excap.station.config import load_station_config
from excap.station.runtime import StationRuntime
from tests.support.paths import REPO
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

AXES = ["lx", "ly", "rx", "ry", "tl", "tr"]
BOOM_UP = (0.0, 0.0, 0.0, -0.9, 0.0, 0.0)  # ISO: right stick pulled back
MYSTERY_CYCLE_MS = 4000
SEED = 2  # with this seed the machine's first `Mystery` frame is due 1.1 s after it starts


def events(path: Path) -> list[tuple[int, str, dict[str, Any]]]:
    with h5py.File(path, "r") as f:
        group = f["events"]
        return [(int(t), k.decode() if isinstance(k, bytes) else str(k),
                 json.loads(d.decode() if isinstance(d, bytes) else d))
                for t, k, d in zip(group["t_ns"][()], group["kind"][()], group["detail"][()], strict=True)]


STREAMS = ("control", "joystick/operator", "cameras/side", "can/can0")


def accepted(recorder: Any) -> dict[str, int]:
    return {status.path: status.accepted for status in recorder.status()}


def rows_after(path: Path, stream: str, t_ns: int) -> int:
    with h5py.File(path, "r") as f:
        return int((f[f"{stream}/t_ns"][()] > t_ns).sum())


def test_a_device_thread_dying_mid_recording_is_a_fault_event_and_the_other_streams_keep_recording(tmp_path):
    """The simulated machine's thread dies on a message of its DBC it cannot simulate, 1.1 s into the episode."""
    dbc = tmp_path / "machine.dbc"
    dbc.write_text(DEFAULT_DBC.read_text() + '\nBO_ 2566852350 Mystery: 8 Vector__XXX\n'
                   ' SG_ Gauge : 0|8@1+ (1,0) [0|250] "" Vector__XXX\n\n'
                   f'BA_ "GenMsgCycleTime" BO_ 2566852350 {MYSTERY_CYCLE_MS};\n')
    profile = yaml.safe_load(load_profile().source.read_text())
    profile["dbc"] = [str(dbc), "can/j1939_joysticks.dbc"]
    (tmp_path / "machine.yaml").write_text(yaml.safe_dump(profile))
    station = yaml.safe_load((REPO / "examples/station_sim.yaml").read_text())
    station["station"]["out_dir"] = str(tmp_path / "episodes")
    station["machine"]["profile"] = str(tmp_path / "machine.yaml")
    station["can"][0]["channel"] = f"excap-faults-{uuid.uuid4().hex}"
    station["cameras"] = [{"name": "side", "source": "sim:side", "width": 160, "height": 120, "fps": 10}]
    (tmp_path / "station.yaml").write_text(yaml.safe_dump(station))
    config = load_station_config(tmp_path / "station.yaml")

    with StationRuntime(config, seed=SEED) as runtime:
        recorder = runtime.start_episode()
        wait_for(lambda: runtime.health()["machine"] == Health.FAILED, timeout=MYSTERY_CYCLE_MS / 1000 + 5,
                 message="the machine's fault")
        fault_t_ns = runtime.faults()[0].t_ns
        health = runtime.health()
        assert health["joystick/operator"] == Health.OK and health["camera/side"] == Health.OK
        at_fault = accepted(recorder)
        wait_for(lambda: all(accepted(recorder)[s] >= at_fault[s] + 6 for s in STREAMS), timeout=20,
                 message="rows recorded after the fault")
        path = runtime.stop_episode()

    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        start_t_ns = int(f.attrs["start_t_ns"])
    faults = [(t, detail) for t, kind, detail in events(path) if kind == "fault"]
    assert [detail for _, detail in faults] == [{"device": "machine", "error": "KeyError: 'Mystery'",
                                                 "thread": "sim-machine"}]
    assert start_t_ns < faults[0][0] == fault_t_ns  # mid-recording
    for stream in STREAMS:
        assert rows_after(path, stream, fault_t_ns) > 5, stream  # the other streams kept recording


# -- joysticks -------------------------------------------------------------------------------------------


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        with contextlib.suppress(OSError):  # the master may have been closed by the test
            os.close(fd)


class MachineSide(can.Listener):
    """What a machine controller sees on the command bus: (t_ns, commands, enabled) per complete frame set."""

    def __init__(self, receiver: CabJoystickReceiver) -> None:
        self.receiver = receiver
        self.views: list[tuple[int, tuple[float, ...], bool]] = []
        self.lock = threading.Lock()
        self.utc_offset_ns = utc_offset_ns()

    def on_message_received(self, msg: can.Message) -> None:
        # when the frame was on the bus (the virtual bus stamps it as sent): a frame sent before a failure but
        # delivered to this listener after it is not taken for one sent after
        t_ns = round(msg.timestamp * 1e9) - self.utc_offset_ns
        if self.receiver.feed(msg, t_ns):
            values, enabled, _ = self.receiver.command()
            with self.lock:
                self.views.append((t_ns, values, enabled))

    def after(self, t_ns: int) -> list[tuple[int, tuple[float, ...], bool]]:
        with self.lock:
            return [view for view in self.views if view[0] > t_ns]


@pytest.fixture
def station(tmp_path: Path, pty: tuple[int, str]) -> Iterator[tuple[StationRuntime, SerialPeer, MachineSide, int]]:
    """A station with one serial joystick on a pty pushing boom up, commands sent on a virtual bus."""
    master, port = pty
    channel = f"excap-faults-{uuid.uuid4().hex}"
    (tmp_path / "station.yaml").write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "faults", "out_dir": "episodes"},
        "machine": {"profile": "excavator_20t", "pattern": "iso", "id": "exc-test"},
        "session": {"operator": "op-1", "certification_policy": "mark_uncertified"},
        "joysticks": [{"name": "console", "type": "serial", "port": port, "protocol": "exjs1", "axes": AXES,
                       "buttons": ["trigger", "b2", "b3"], "reconnect_interval_s": 0.05}],
        "inputs": {"axes": dict(zip(["left_x", "left_y", "right_x", "right_y", "travel_left", "travel_right"],
                                    [f"console.{a}" for a in AXES], strict=True)),
                   "buttons": {"enable": "console.trigger"}},
        "can": [{"name": "can0", "interface": "virtual", "channel": channel}],
        "command": {"bus": "can0", "stale_timeout_ms": 1000},
    }))
    config = load_station_config(tmp_path / "station.yaml")
    stick = {"state": ((0.0,) * 6, (1, 0, 0))}
    peer = SerialPeer(master, SerialPeerConfig(protocol="exjs1", rate_hz=100.0), lambda _i: stick["state"]).start()
    machine_bus = can.Bus(interface="virtual", channel=channel)
    machine = MachineSide(CabJoystickReceiver(config.profile.cab_joysticks, config.profile.functions))
    notifier = can.Notifier(machine_bus, [machine], timeout=0.05)
    runtime = StationRuntime(config).open()
    try:
        wait_for(lambda: runtime.command is not None and runtime.command.link_state == "active",
                 message="enabled from neutral")
        stick["state"] = (BOOM_UP, (1, 0, 0))
        wait_for(lambda: any(e and v[0] > 0.5 for _, v, e in machine.after(0)), message="boom up on the wire")
        yield runtime, peer, machine, master
    finally:
        runtime.close()
        peer.stop()
        notifier.stop()
        machine_bus.shutdown()


def assert_neutral_once_known(machine: MachineSide, known_at_ns: int) -> None:
    """From the moment the station knows of the loss, the machine gets neutral and disabled for good: only the
    frames of a period decided before that moment (one, in flight) may still carry the command."""
    wait_for(lambda: len(machine.after(known_at_ns)) >= 3, message="frames after the failure")
    views = machine.after(known_at_ns)
    neutral = [not enabled and values == (0.0,) * 6 for _, values, enabled in views]
    assert True in neutral[:2], f"no neutral frames right after the loss: {views[:3]}"
    assert all(neutral[neutral.index(True):]), "commands again after neutral"


def test_a_joystick_whose_reader_thread_dies_neutralises_the_commands_and_is_recorded(station):
    runtime, _peer, machine, _master = station
    runtime.start_episode()
    driver = runtime.joystick_drivers["console"]
    failed_at = now_ns()
    driver.guard.fail(MemoryError("reader could not allocate a frame buffer"))  # what the reader thread would do
    assert runtime.command is not None and runtime.link is not None
    assert_neutral_once_known(machine, failed_at)
    assert runtime.health()["joystick/console"] == Health.FAILED
    assert runtime.link.state == "neutralised"
    path = runtime.stop_episode()
    assert validate_episode(path) == []
    recorded = sorted((t, kind, detail) for t, kind, detail in events(path) if kind in ("fault", "neutralised"))
    assert [(kind, detail) for _, kind, detail in recorded] == [
        ("fault", {"device": "joystick/console", "error": "MemoryError: reader could not allocate a frame buffer",
                   "thread": "MainThread"}),
        ("neutralised", {"reason": "input lost: joystick/console failed: MemoryError: reader could not allocate "
                                   "a frame buffer"}),
    ]


def test_a_serial_joystick_whose_pty_closes_mid_read_neutralises_the_commands(station):
    runtime, peer, machine, master = station
    runtime.start_episode()
    peer.stop()
    closed_at = now_ns()
    os.close(master)  # the device end of the line is gone while the driver reads
    wait_for(lambda: runtime.health()["joystick/console"] == Health.DISCONNECTED, message="disconnected")
    wait_for(lambda: runtime.link is not None and runtime.link.state == "neutralised", message="neutralised")
    path = runtime.stop_episode()
    assert validate_episode(path) == []
    recorded = sorted((t, kind, detail) for t, kind, detail in events(path) if kind in ("joystick_lost", "neutralised"))
    assert [(kind, detail) for _, kind, detail in recorded] == [
        ("joystick_lost", {"device": "console"}),
        # the closed line, not the joystick's silence (1 s to stale here), is what neutralised the commands
        ("neutralised", {"reason": "input lost: joystick console disconnected"}),
    ]
    lost_at = recorded[0][0]
    assert lost_at > closed_at
    assert_neutral_once_known(machine, lost_at)
