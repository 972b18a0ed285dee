"""`excap station --sim --foxglove PORT`: the live streams over the Foxglove WebSocket protocol to a real client on
loopback (channels advertised, subscribed, binary message data received), camera frames as the recorded JPEG bytes,
and a viewer that connects and never reads costs the recorder nothing."""

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import httpx
import pytest

from tests.support.foxglove_client import FoxgloveClient, foxglove_client, protobuf_fields
from tests.support.imports import run_without
from tests.support.report import record
from tests.support.station_process import StationProcess, station_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow
_VIEW = re.compile(r"^foxglove live view: (ws://127\.0\.0\.1:\d+)$")
CAMERAS = ["/excap/cameras/side", "/excap/cameras/top"]
TOPICS = [*CAMERAS, "/excap/joy/operator", "/excap/commands", "/excap/can/can0/EEC1", "/excap/events",
          "/excap/health", "/tf"]


def view_url(station: StationProcess) -> str:
    wait_for(lambda: any(_VIEW.match(line) for line in station.lines), message="the live view's address")
    found = next(m for m in map(_VIEW.match, station.lines) if m)
    return found.group(1)


@contextmanager
def live_station(out: Path) -> Iterator[tuple[StationProcess, str]]:
    with station_process("--sim", "--headless", "--port", "0", "--out", str(out), "--foxglove", "0") as station:
        yield station, view_url(station)


def advertised(client: FoxgloveClient, topics: list[str]) -> None:
    client.receive_until(lambda: all(t in client.channels for t in topics), 20, f"channels {topics}")


def recorded_frames(path: Path) -> set[bytes]:
    with h5py.File(path, "r") as f:
        return {bytes(f[f"cameras/{name}/frames"][i]) for name in ("side", "top")
                for i in range(len(f[f"cameras/{name}/frames"]))}


def drops(path: Path) -> dict[str, int]:
    """Recording losses: `drop` events and each stream's `dropped` attribute."""
    found: dict[str, int] = {}
    with h5py.File(path, "r") as f:
        kinds = [k.decode() if isinstance(k, bytes) else k for k in f["events/kind"][()]]
        found["drop events"] = kinds.count("drop")

        def visit(name: str, item: object) -> None:
            dropped = getattr(item, "attrs", {}).get("dropped")
            if dropped:
                found[name] = int(dropped)
        f.visititems(visit)
    return {k: v for k, v in found.items() if v}


def test_the_station_serves_its_live_streams_to_foxglove(tmp_path: Path) -> None:
    with live_station(tmp_path / "episodes") as (station, url), foxglove_client(url) as client:
        advertised(client, TOPICS)
        assert client.channels["/excap/cameras/side"]["schemaName"] == "foxglove.CompressedImage"
        assert client.channels["/excap/events"]["schemaName"] == "foxglove.Log"
        assert client.channels["/excap/commands"]["encoding"] == "json"
        assert client.channels["/tf"]["schemaName"] == "foxglove.FrameTransforms"
        client.subscribe(TOPICS)
        base = station.url()
        assert httpx.post(f"{base}/api/start", json={}, timeout=30).status_code == 200
        started = b'"action": "start"'
        client.receive_until(lambda: all(client.messages[t] for t in TOPICS) and any(
            started in m.payload for m in client.messages["/excap/events"]), 30, "every channel and the start")
        stopped = httpx.post(f"{base}/api/stop", json={}, timeout=30)
        assert stopped.status_code == 200, stopped.text
    path = Path(stopped.json()["path"])

    commands = client.messages["/excap/commands"][-1].json()
    assert set(commands) == {"enabled", "link", "commands"} and "boom" in commands["commands"]
    joy = client.messages["/excap/joy/operator"][-1].json()
    assert joy["device"] == "operator" and joy["axes"] and "buttons" in joy
    assert "EngSpeed" in client.messages["/excap/can/can0/EEC1"][-1].json()
    links = client.messages["/tf"][-1].payload  # protobuf: the excavator's chain, frame names as strings
    assert all(name in links for name in (b"upper", b"boom", b"arm", b"bucket"))
    health = client.messages["/excap/health"][-1].json()
    assert {"control", "cameras/side"} <= {f["subject"] for f in health["findings"]}
    logs = [protobuf_fields(m.payload) for m in client.messages["/excap/events"]]
    assert any(log[3].startswith(b"station_action ") and json.loads(log[3].split(b" ", 1)[1])["action"] == "start"
               and log[4] == b"excap station" for log in logs), [log[3] for log in logs]

    # the viewer sees the very JPEG bytes the recorder stored: no re-encoding on the way
    images = [protobuf_fields(m.payload) for t in CAMERAS for m in client.messages[t]]
    assert all(image[3] == b"jpeg" and image[2][:2] == b"\xff\xd8" for image in images)
    stored = recorded_frames(path)
    matched = sum(image[2] in stored for image in images)
    assert matched > 0, "no received frame is one the recorder stored"
    record("foxglove live view", "camera frames received / matching a recorded frame", f"{len(images)} / {matched}")


def test_a_viewer_that_never_reads_costs_the_recorder_nothing(tmp_path: Path) -> None:
    with live_station(tmp_path / "episodes") as (station, url), foxglove_client(url) as client:
        advertised(client, TOPICS)
        client.subscribe(TOPICS)  # ... and from here on it reads nothing: its socket fills, the server backs up
        base = station.url()
        assert httpx.post(f"{base}/api/start", json={}, timeout=30).status_code == 200
        wait_for(lambda: httpx.get(f"{base}/api/status", timeout=10).json()["recording"]["elapsed_s"] >= 4.0,
                 timeout=30, message="4 s of recording beside a stalled viewer")
        stopped = httpx.post(f"{base}/api/stop", json={}, timeout=30)
        assert stopped.status_code == 200, stopped.text
        status = httpx.get(f"{base}/api/status", timeout=10).json()
    path = Path(stopped.json()["path"])
    assert drops(path) == {}, drops(path)
    with h5py.File(path, "r") as f:
        duration = (int(f["control/t_ns"][-1]) - int(f["control/t_ns"][0])) / 1e9
        frames = {name: len(f[f"cameras/{name}/t_ns"]) for name in ("side", "top")}
        fps = {name: float(f[f"cameras/{name}"].attrs["nominal_fps"]) for name in ("side", "top")}
    record("foxglove stalled viewer", "recording drops", 0)
    record("foxglove stalled viewer", "camera frames recorded / nominal", json.dumps(
        {n: f"{frames[n]} / {fps[n] * duration:.0f}" for n in frames}))
    assert all(frames[n] >= 0.8 * fps[n] * duration for n in frames), (frames, duration)
    assert status["recording"]["active"] is False


def test_without_the_viewers_extra_foxglove_is_one_line(tmp_path: Path) -> None:
    process = run_without(("foxglove",), "station", "--sim", "--headless", "--port", "0", "--out",
                          str(tmp_path / "episodes"), "--foxglove", "0")
    assert process.returncode == 2
    assert process.stderr == ("excap: error: 'excap station --foxglove' needs the viewers extra: pip install "
                              "'excap[viewers]'\n")
    assert not (tmp_path / "episodes").exists()


def test_without_the_viewers_extra_node_foxglove_is_one_line(tmp_path: Path) -> None:
    process = run_without(("foxglove",), "node", "--sim", "--out", str(tmp_path / "episodes"), "--foxglove", "0")
    assert process.returncode == 2
    assert process.stderr == ("excap: error: 'excap node --foxglove' needs the viewers extra: pip install "
                              "'excap[viewers]'\n")
