"""A station whose devices deliver only when a test lets them: a camera reading a video file that does not exist
yet (it connects once the test writes it, see `station_devices.write_video`) and a python-can `virtual` bus that
carries frames only while a `BusPeer` of the test sends them."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import can
import h5py
import yaml

CAMERA = "cab"
BUS = "can0"
EEC1 = 0x0CF00400  # a J1939 frame the machine profile's DBC decodes


def gated_station_yaml(tmp_path: Path, can_required: bool = True, camera_required: bool = True,
                       channel: str | None = None) -> tuple[Path, str]:
    """The station config and its virtual CAN channel; the camera reads `tmp_path / cab.avi` once written."""
    channel = channel or f"excap-gate-{uuid.uuid4().hex}"
    camera: dict[str, Any] = {"name": CAMERA, "source": str(tmp_path / "cab.avi"), "reconnect_interval_s": 0.05}
    bus: dict[str, Any] = {"name": BUS, "interface": "virtual", "channel": channel}
    if not camera_required:
        camera["required"] = False
    if not can_required:
        bus["required"] = False
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "gate-station", "out_dir": str(tmp_path / "episodes")},
        "machine": {"profile": "excavator_20t", "id": "exc-gate"},
        "session": {"operator": "op-1", "site": "yard", "task": "trench", "certification_policy": "mark"},
        "can": [bus], "cameras": [camera],
    }))
    return path, channel


def place_video(path: Path, frames: int = 300) -> None:
    """A video file appears at `path` complete (written beside it, then renamed), so a camera waiting for it never
    opens it half-written."""
    from tests.support.station_devices import write_video

    partial = path.with_name(f".partial-{path.name}")
    write_video(partial, frames=frames)
    os.replace(partial, path)


class BusPeer:
    """Sends an EEC1 frame every `period_s` on a virtual channel while `sending` is set."""

    def __init__(self, channel: str, period_s: float = 0.01) -> None:
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.period_s = period_s
        self.sending = threading.Event()
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-peer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        message = can.Message(arbitration_id=EEC1, data=bytes(8), is_extended_id=True)
        while not self._stop.wait(self.period_s):
            if self.sending.is_set():
                self.bus.send(message)
                self.sent += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.bus.shutdown()


def episode_events(path: Path, *kinds: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, detail) of the episode's events, of `kinds` only if given."""
    with h5py.File(path, "r") as f:
        rows = zip(f["events/kind"].asstr()[()], f["events/detail"].asstr()[()], strict=True)
        return [(str(k), json.loads(d)) for k, d in rows if not kinds or k in kinds]
