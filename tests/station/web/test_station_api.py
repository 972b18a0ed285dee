"""The station's JSON API, certification before recording, warnings, and the joystick bindings."""

import subprocess
from pathlib import Path

import h5py
import pytest

from excap.episode.validation import validate_episode
from excap.station.certification import CertificationRefused
from excap.station.config import load_station_config
from excap.station.session import run_station_session
from excap.station.status import StationMonitor, StatusThresholds, station_status, status_line
from tests.support.commands import excap_command
from tests.support.station import certify, station_yaml
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def events(path) -> list[tuple[str, str]]:
    with h5py.File(path, "r") as f:
        return [(k.decode(), d.decode()) for k, d in zip(f["events/kind"][()], f["events/detail"][()], strict=True)]


def test_refused_operator_records_nothing_and_a_certified_one_records(make_station):
    station = make_station(policy="refuse", operator="op-1")
    refused = station.post("/api/start", {"operator": "op-unknown"})
    assert refused.status_code == 409 and "not recording" in refused.json()["message"]
    assert not station.running.runtime.recording and not list(station.out_dir.glob("*.h5"))
    assert station.status()["messages"][-1]["level"] == "error"

    certify(station.out_dir, "op-2")
    session = station.post("/api/session", {"operator": "op-2"}).json()
    assert session["certification"]["certified"] and session["operators"] == ["op-2"]
    assert station.post("/api/start").status_code == 200
    wait_for(lambda: station.status()["recording"]["elapsed_s"] > 0.5, message="timer running")
    assert station.post("/api/mark", {"label": "bucket full"}).json()["marker"] == 1
    stopped = station.post("/api/stop", {"outcome": "failure"}).json()
    assert validate_episode(Path(stopped["path"])) == []
    with h5py.File(stopped["path"], "r") as f:
        assert f.attrs["operator_id"] == "op-2" and f.attrs["certification"] == "cpcs-a59 #op-2-cert"
        assert f.attrs["outcome"] == "failure" and f.attrs["task"] == "trench"
    kinds = [k for k, _ in events(stopped["path"])]
    assert {"certification", "station_action", "marker"} <= set(kinds)
    assert station.post("/api/stop").status_code == 409  # not recording
    assert station.post("/api/stop", {"outcome": "maybe"}).status_code == 400


def test_mark_uncertified_records_with_the_mark(make_station):
    station = make_station(policy="mark_uncertified", operator="op-9")
    started = station.post("/api/start")
    assert started.status_code == 200 and "uncertified" in started.json()["message"]
    path = station.post("/api/stop").json()["path"]
    with h5py.File(path, "r") as f:
        assert f.attrs["certification"].startswith("UNCERTIFIED: operator 'op-9' is not in the operator registry")
    assert any(kind == "certification" and '"missing"' in detail for kind, detail in events(path))


def test_record_config_checks_certification_before_opening_devices(tmp_path):
    config = load_station_config(station_yaml(tmp_path, "/dev/null-no-such-port", policy="refuse", operator="op-x"))
    with pytest.raises(CertificationRefused, match="not recording: operator 'op-x' is not in the operator registry"):
        run_station_session(config, duration_s=1.0)
    result = subprocess.run(excap_command("record", "--config", str(tmp_path / "station.yaml"), "--duration", "1"),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "excap: error: not recording" in result.stderr


def test_warnings_disk_clock_jump_stale_and_neutralised(make_station):
    station = make_station(operator="op-1", warn_hold_s=2.0)  # a drop while a loaded machine starts is held 2 s
    runtime, controller = station.running.runtime, station.running.station.controller
    wait_for(lambda: runtime.command is not None and runtime.command.link_state == "active", message="enabled")
    seen: list[list[dict]] = [[]]

    def quiet() -> bool:
        seen[0] = station.status()["warnings"]
        return not seen[0]

    try:
        wait_for(quiet, message="no warnings once every stream runs")
    except pytest.fail.Exception:
        pytest.fail(f"warnings stayed once every stream runs: {seen[0]}")
    wall = {"offset": 0}
    monitor = StationMonitor(runtime, StatusThresholds(disk_warn_bytes=1e18),
                             wall_ns=lambda: __import__("time").time_ns() + wall["offset"])
    monitor.sample()
    wall["offset"] = 2_000_000_000  # the wall clock is set 2 s forward
    monitor.sample()
    codes = {w["code"] for w in station_status(runtime, controller, monitor)["warnings"]}
    assert {"disk", "clock_jump"} <= codes

    station.console.peer.pause()  # the console goes silent: stale stream, stale device, commands neutralised
    wait_for(lambda: {"stream_stale", "neutralised"} <= {w["code"] for w in station.status()["warnings"]},
             message="stale and neutralised warnings")
    status = station.status()
    assert status["command"]["link_state"] == "neutralised" and "stale" in status["command"]["fault"]
    assert "Commands neutralised" in status_line(status)
    station.console.peer.resume()
    station.console.release("enable")  # as an operator does: release enable, then enable again from neutral
    wait_for(lambda: not runtime.joystick_samples()["console"].buttons[0], message="enable released")
    wait_for(lambda: runtime.link is not None and runtime.link.awaiting_enable,
             message="the command link has seen enable released")  # a release shorter than its period is missed
    station.console.press("enable")
    wait_for(lambda: station.status()["command"]["link_state"] == "active", message="commands restored")
    wait_for(lambda: not station.status()["warnings"], message="warnings gone after re-enabling")


def test_joystick_bindings_start_mark_and_stop_with_success(make_station):
    station = make_station(operator="op-1")
    certify(station.out_dir, "op-1")
    runtime, console = station.running.runtime, station.console
    wait_for(lambda: "console" in runtime.joystick_samples(), message="console")

    console.press("marker")  # hold marker 1 s: start
    wait_for(lambda: runtime.recording, message="recording started by the marker button")
    console.release("marker")
    assert "holding" not in station.status()["bindings"]["pending"]
    wait_for(lambda: not runtime.joystick_samples()["console"].buttons[2], message="marker released")
    messages = station.status()["messages"]
    assert messages[-1]["source"] == "joystick" and messages[-1]["text"].startswith("recording")

    console.press("marker")  # a tap: a marker
    wait_for(lambda: "release: marker" in station.status()["bindings"]["pending"], message="marker armed")
    console.release("marker")
    wait_for(lambda: runtime.markers == 1, message="marker from a tap")

    console.press("horn", "marker")  # the chord, held 0.5 .. 3 s, then released: success
    wait_for(lambda: "release: success" in station.status()["bindings"]["pending"], message="success armed")
    console.release("horn", "marker")
    wait_for(lambda: not runtime.recording and runtime.last is not None, message="stopped by the chord")
    path = runtime.last.path
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert f.attrs["outcome"] == "success"
    found = events(path)
    assert ("marker", '{"index": 1, "text": ""}') in found
    actions = [d for k, d in found if k == "station_action"]
    assert '"source": "joystick"' in actions[0] and '"outcome": "success"' in actions[-1]
    assert station.running.station.bindings.fired == ["start_stop", "marker", "success"]


def test_page_refuses_non_loopback_hosts(tmp_path):
    result = subprocess.run(excap_command("station", "--sim", "--host", "0.0.0.0", "--out", str(tmp_path)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--allow-remote" in result.stderr
