"""A running simulated station for the page and API tests: a serial console on a real pty (its sticks and
buttons scripted by the test), the simulated excavator on a virtual CAN bus, and two rendered cameras."""

import os
import tty
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig
from excap.people.admin import add_operator, certify_operator
from excap.station.app import RunningStation
from excap.station.config import load_station_config
from excap.station.status import StatusThresholds
from tests.support.waiting import wait_for

AXES = ["lx", "ly", "rx", "ry", "tl", "tr"]
BUTTONS = ["enable", "horn", "marker"]
PROFILE_AXES = ["left_x", "left_y", "right_x", "right_y", "travel_left", "travel_right"]


def station_yaml(tmp_path: Path, port: str, policy: str = "refuse", operator: str = "op-1") -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "test-station", "out_dir": "episodes"},
        "machine": {"profile": "excavator_20t", "pattern": "iso", "id": "exc-web", "simulated": True},
        "session": {"operator": operator, "site": "yard", "task": "trench", "certification_policy": policy},
        "joysticks": [{"name": "console", "type": "serial", "port": port, "protocol": "exjs1",
                       "axes": AXES, "buttons": BUTTONS}],
        "inputs": {"axes": {p: f"console.{a}" for p, a in zip(PROFILE_AXES, AXES, strict=True)},
                   "buttons": {b: f"console.{b}" for b in BUTTONS}},
        "can": [{"name": "can0", "interface": "virtual", "channel": f"excap-web-{uuid.uuid4().hex}",
                 "bitrate": 250000}],
        "cameras": [{"name": "side", "source": "sim:side", "width": 320, "height": 240, "fps": 15},
                    {"name": "top", "source": "sim:top", "width": 320, "height": 240, "fps": 15}],
        "command": {"bus": "can0"},
    }))
    return path


def certify(out_dir: Path, operator: str, kinds: tuple[str, ...] = ("excavator",)) -> None:
    registry = out_dir / ".excap" / "operators.yaml"
    if not registry.exists() or operator not in registry.read_text():
        add_operator(registry, operator)
    certify_operator(registry, operator, "cpcs-a59", list(kinds), None, ref=f"{operator}-cert")


@dataclass
class Console:
    """The operator's serial console: enable held, sticks centred, unless a test says otherwise."""

    axes: tuple[float, ...] = (0.0,) * 6
    buttons: dict[str, int] = field(default_factory=lambda: {"enable": 1, "horn": 0, "marker": 0})
    peer: SerialPeer | None = None

    def state(self, _index: int) -> tuple[tuple[float, ...], tuple[int, ...]]:
        return self.axes, tuple(self.buttons[b] for b in BUTTONS)

    def press(self, *names: str) -> None:
        for name in names:
            self.buttons[name] = 1

    def release(self, *names: str) -> None:
        for name in names:
            self.buttons[name] = 0


@dataclass
class StationFixture:
    running: RunningStation
    console: Console
    out_dir: Path

    @property
    def url(self) -> str:
        assert self.running.server is not None
        return self.running.server.url

    def status(self) -> dict:
        return httpx.get(f"{self.url}/api/status", timeout=10).json()

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body or {}, timeout=30)

    def enabled(self) -> bool:
        """Whether commands flow; if the link latched a fault (e.g. input stale while the console started),
        re-arm as an operator does: release enable with the sticks centred, then press it again."""
        runtime = self.running.runtime
        sample = runtime.joystick_samples().get("console")
        command = runtime.command
        if command is None or sample is None:
            return False
        held, seen = self.console.buttons["enable"], sample.buttons[0]
        if command.link_state != "active" and held == seen:  # the station saw the last change: make the next
            (self.console.release if held else self.console.press)("enable")
        return command.link_state == "active"


@contextmanager
def console_on_pty() -> Iterator[tuple[Console, str]]:
    """The operator's console behind a real pty; yields it and the port name a station config opens."""
    master, slave = os.openpty()
    tty.setraw(slave)
    console = Console()
    console.peer = SerialPeer(master, SerialPeerConfig(protocol="exjs1", rate_hz=100.0), console.state).start()
    try:
        yield console, os.ttyname(slave)
    finally:
        console.peer.stop()
        os.close(master)
        os.close(slave)


@pytest.fixture
def pty_console():
    with console_on_pty() as (console, port):
        yield console, port


def start_station(tmp_path: Path, port: str, console: Console, policy: str = "refuse",
                  operator: str = "op-1", **thresholds: float) -> StationFixture:
    config = load_station_config(station_yaml(tmp_path, port, policy, operator))
    running = RunningStation.start(config, StatusThresholds(stale_after_s=0.5, **thresholds), port=0)
    return StationFixture(running, console, config.out_dir)


@pytest.fixture
def make_station(tmp_path, pty_console):
    console, port = pty_console
    started: list[StationFixture] = []

    def make(policy: str = "refuse", operator: str = "op-1", **thresholds: float) -> StationFixture:
        fixture = start_station(tmp_path, port, console, policy, operator, **thresholds)
        started.append(fixture)
        wait_for(fixture.enabled, message="commands enabled")
        return fixture

    yield make
    for fixture in started:
        fixture.running.stop()


@pytest.fixture(scope="module")
def module_station(tmp_path_factory):
    """One station (policy `refuse`, operator op-1 certified) shared by the tests of a module, commands enabled."""
    tmp_path = tmp_path_factory.mktemp("station")
    with console_on_pty() as (console, port):
        fixture = start_station(tmp_path, port, console, "refuse", "op-1")
        try:
            certify(fixture.out_dir, "op-1")
            wait_for(fixture.enabled, message="commands enabled")
            yield fixture
        finally:
            fixture.running.stop()
