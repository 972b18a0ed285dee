"""A session does not start while a required device has not delivered data, unless the operator overrides it (a
`start_override` event); devices failing mid-recording are `fault` / `fault_cleared` events."""

import subprocess
import time

import httpx
import pytest

from excap.station.app import RunningStation
from excap.station.config import load_station_config
from excap.station.control import StationController
from excap.station.readiness import NOT_READY_CODE, not_ready, required_devices
from excap.station.runtime import StationRuntime
from tests.support.commands import excap_command
from tests.support.gated_station import BusPeer, episode_events, gated_station_yaml, place_video
from tests.support.paths import REPO
from tests.support.waiting import wait_for

NOT_READY = "not ready: camera cab (no picture yet, disconnected), can can0 (no frames yet)"


@pytest.fixture
def peer_channel(tmp_path):
    path, channel = gated_station_yaml(tmp_path)
    peer = BusPeer(channel)
    yield path, peer
    peer.close()


def test_start_is_refused_naming_the_devices_and_an_override_records_them(tmp_path):
    path, _channel = gated_station_yaml(tmp_path)
    with StationRuntime(load_station_config(path)) as runtime:
        controller = StationController(runtime, ready_wait_s=0.0)
        refused = controller.act("start", "page")
        assert not refused.ok and refused.message == NOT_READY and refused.code == NOT_READY_CODE
        assert [d["device"] for d in refused.devices] == ["camera/cab", "can/can0"]
        assert not runtime.recording and not list((tmp_path / "episodes").glob("*.h5"))
        started = controller.act("start", "page", override=True)
        assert started.ok and "started anyway, " + NOT_READY in started.message
        saved = controller.act("stop", "page")
    [(_, detail)] = episode_events(saved.path, "start_override")
    assert detail["devices"] == ["camera/cab", "can/can0"] and detail["source"] == "page" and detail["by"] == "op-1"
    assert detail["reasons"] == ["no picture yet, disconnected", "no frames yet"]


def test_a_joystick_binding_cannot_override(tmp_path):
    path, _channel = gated_station_yaml(tmp_path)
    with StationRuntime(load_station_config(path)) as runtime:
        result = StationController(runtime, ready_wait_s=0.0).act("start", "joystick")
        assert not result.ok and result.code == NOT_READY_CODE and not runtime.recording


def test_devices_that_deliver_make_the_station_ready(tmp_path, peer_channel):
    path, peer = peer_channel
    with StationRuntime(load_station_config(path)) as runtime:
        assert [d.device for d in not_ready(runtime)] == ["camera/cab", "can/can0"]
        place_video(tmp_path / "cab.avi")
        peer.sending.set()
        wait_for(lambda: not not_ready(runtime), timeout=10, message="camera and bus deliver")
        controller = StationController(runtime, ready_wait_s=0.0)
        result = controller.act("start", "page")
        assert result.ok and "started anyway" not in result.message, result.message
        saved = controller.act("stop", "page")
    assert saved.ok and episode_events(saved.path, "start_override") == []


def test_required_false_opts_a_device_out(tmp_path):
    path, _channel = gated_station_yaml(tmp_path, can_required=False)
    config = load_station_config(path)
    assert required_devices(config) == ["camera/cab"] and config.optional_devices == {"can/can0"}
    with StationRuntime(config) as runtime:
        result = StationController(runtime, ready_wait_s=0.0).act("start", "page")
        assert result.message == "not ready: camera cab (no picture yet, disconnected)"


def test_a_start_soon_after_opening_waits_for_the_devices(tmp_path, peer_channel):
    """Within ready_wait_s of the devices opening a start waits for them instead of refusing at once."""
    path, peer = peer_channel
    place_video(tmp_path / "cab.avi")
    peer.sending.set()
    with StationRuntime(load_station_config(path)) as runtime:
        result = StationController(runtime, ready_wait_s=10.0).act("start", "page")
        assert result.ok, result.message
        runtime.stop_episode()


def test_record_config_refuses_in_one_line_and_starts_anyway_on_request(tmp_path):
    path, _channel = gated_station_yaml(tmp_path)
    began = time.monotonic()
    refused = subprocess.run(excap_command("record", "--config", str(path), "--duration", "0.3", "--quiet",
                                           "--wait-devices", "0.5"), capture_output=True, text=True, cwd=REPO,
                             timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines()[-1] == f"excap: error: {NOT_READY}"
    assert time.monotonic() - began < 60 and not list((tmp_path / "episodes").glob("*.h5"))
    anyway = subprocess.run(excap_command("record", "--config", str(path), "--duration", "0.3", "--quiet",
                                          "--wait-devices", "0", "--start-anyway"), capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert anyway.returncode == 0, anyway.stderr
    [(_, detail)] = episode_events(anyway.stdout.strip().splitlines()[-1], "start_override")
    assert detail["devices"] == ["camera/cab", "can/can0"] and detail["source"] == "record"


def test_api_start_refuses_with_the_code_and_overrides_on_request(tmp_path):
    path, _channel = gated_station_yaml(tmp_path)
    running = RunningStation.start(load_station_config(path), host="127.0.0.1", port=0)
    running.station.controller.ready_wait_s = 0.0
    try:
        assert running.server is not None
        with httpx.Client(base_url=running.server.url, timeout=30) as client:
            refused = client.post("/api/start", json={})
            assert refused.status_code == 409
            body = refused.json()
            assert body["code"] == NOT_READY_CODE and body["message"] == NOT_READY
            assert [d["device"] for d in body["devices"]] == ["camera/cab", "can/can0"]
            assert client.post("/api/start", json={"override": "yes"}).status_code == 400
            started = client.post("/api/start", json={"override": True})
            assert started.status_code == 200, started.text
            stopped = client.post("/api/stop", json={})
            assert stopped.status_code == 200
    finally:
        running.stop()
    [(_, detail)] = episode_events(stopped.json()["path"], "start_override")
    assert detail["source"] == "page"


def test_devices_failing_mid_recording_are_fault_events_and_their_return_fault_cleared(tmp_path, peer_channel):
    path, peer = peer_channel
    place_video(tmp_path / "cab.avi")
    peer.sending.set()
    with StationRuntime(load_station_config(path)) as runtime:
        wait_for(lambda: not not_ready(runtime), timeout=10, message="camera and bus deliver")
        runtime.start_episode()
        watch = runtime.device_watch
        assert watch is not None
        peer.sending.clear()  # the bus goes silent
        wait_for(lambda: "can/can0" in watch.troubles, timeout=10, message="silent bus noticed")
        peer.sending.set()
        wait_for(lambda: "can/can0" not in watch.troubles, timeout=10, message="bus back")
        episode = runtime.stop_episode()
    faults = episode_events(episode, "fault", "fault_cleared")
    bus = [(kind, detail["problem"]) for kind, detail in faults if detail.get("device") == "can/can0"]
    assert bus == [("fault", "silent"), ("fault_cleared", "silent")]
    cleared = next(d for k, d in faults if k == "fault_cleared")
    assert cleared["after_s"] > 0.0 and not [d for k, d in faults if d.get("device") == "camera/cab"]


def test_a_camera_that_stops_delivering_is_a_fault_until_it_is_back(tmp_path, peer_channel):
    path, peer = peer_channel
    place_video(tmp_path / "cab.avi", frames=20)  # about 0.7 s at 30 fps, then the file ends: the camera is lost
    peer.sending.set()
    with StationRuntime(load_station_config(path)) as runtime:
        wait_for(lambda: not not_ready(runtime), timeout=10, message="camera and bus deliver")
        runtime.start_episode()
        watch = runtime.device_watch
        assert watch is not None
        wait_for(lambda: "camera/cab" in watch.troubles, timeout=10, message="camera lost noticed")
        place_video(tmp_path / "cab.avi", frames=300)  # a new file at its path: the camera reconnects
        wait_for(lambda: "camera/cab" not in watch.troubles, timeout=10, message="camera back")
        episode = runtime.stop_episode()
    camera = [(kind, detail["problem"]) for kind, detail in episode_events(episode, "fault", "fault_cleared")
              if detail.get("device") == "camera/cab"]
    assert camera[0] == ("fault", "disconnected") and camera[-1][0] == "fault_cleared", camera
    assert [kind for kind, _ in camera].count("fault_cleared") == 1
    assert [k for k, _ in episode_events(episode, "camera_lost", "reconnect")] == ["camera_lost", "reconnect"]
