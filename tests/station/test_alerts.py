"""Health in plain words: every rule says what is wrong, since when, what it means and what to do; the status's one
`alerts` list is loudest first; a silent CAN bus and a frozen camera are findings on a running simulated station."""

from pathlib import Path

import can
import pytest

from excap.drivers.base import Health
from excap.station.app import RunningStation
from excap.station.health import (
    Finding,
    HealthThresholds,
    Level,
    Onsets,
    alert_order,
    bus_finding,
    clock_finding,
    command_finding,
    device_finding,
    disk_finding,
    recorder_finding,
    stream_finding,
)
from excap.station.runtime import StreamState
from excap.station.sim import SimSessionOptions, simulated_station
from excap.station.status import status_line
from tests.support.waiting import wait_for

THRESHOLDS = HealthThresholds(stale_after_s=1.0, disk_warn_bytes=5e9)


def stream(path: str, samples: int = 100, staleness_s: float | None = 0.01, rate_hz: float = 15.0,
           recording: bool = False) -> StreamState:
    return StreamState(path, rate_hz, samples, 0, staleness_s, recording)


# (finding, level, sound, words its title starts with, words its action holds)
RULES = [
    (stream_finding(stream("cameras/cab", samples=0, staleness_s=None), THRESHOLDS), Level.WARN, False,
     "Camera cab: no picture yet", "camera cable"),
    (stream_finding(stream("cameras/cab", staleness_s=12.4, recording=True), THRESHOLDS), Level.ERROR, True,
     "Camera cab: no picture for 12 s", "camera cable and power"),
    (stream_finding(stream("joystick/left", staleness_s=3.0), THRESHOLDS), Level.ERROR, True,
     "Joystick left: no data for 3 s", "joystick cable"),
    (stream_finding(stream("cameras/cab"), THRESHOLDS, recent_drops=7), Level.WARN, False,
     "Camera cab: 7 samples lost lately", "Close other programs"),
    (stream_finding(stream("cameras/cab", rate_hz=3.0), THRESHOLDS, nominal_hz=15.0, active_s=10.0), Level.WARN,
     False, "Camera cab: 3.0 frames/s, below 50% of its nominal 15", "light"),
    (device_finding("camera/cab", Health.STALE), Level.WARN, False, "Camera cab: answering late", "camera cable"),
    (device_finding("camera/cab", Health.DISCONNECTED), Level.ERROR, True, "Camera cab: disconnected",
     "camera cable and power"),
    (device_finding("joystick/left", Health.FAILED), Level.ERROR, True, "Joystick left: failed", "restart the station"),
    (command_finding("neutralised", "input stale for 300 ms", False), Level.ERROR, True,
     "Commands neutralised: input stale for 300 ms", "Release enable, centre the sticks"),
    (command_finding("faulted", "bus write failed", False), Level.ERROR, True, "Commands stopped: bus write failed",
     "check the CAN connection"),
    (bus_finding("can0", can.BusState.PASSIVE, 12), Level.WARN, False, "CAN bus can0: many transmission errors",
     "terminators"),
    (bus_finding("can0", can.BusState.ERROR, 40), Level.ERROR, True, "CAN bus can0: off the bus", "terminators"),
    (bus_finding("can0", can.BusState.ACTIVE, 0, silent_s=4.2), Level.WARN, False, "CAN bus can0: silent",
     "ignition"),
    (bus_finding("can0", can.BusState.ACTIVE, 0, silent_s=4.2, recording=True), Level.ERROR, True,
     "CAN bus can0: silent, no frames for 4 s", "ignition"),
    (disk_finding(3e9, None, "/data", THRESHOLDS), Level.WARN, False, "Disk low: 3.0 GB free in /data",
     "Copy finished episodes"),
    (disk_finding(1e9, 120.0, "/data", THRESHOLDS), Level.ERROR, True, "Disk nearly full", "Copy finished episodes"),
    (disk_finding(9e9, 300.0, "/data", THRESHOLDS), Level.WARN, False, "Disk: about 5 min of recording left",
     "larger disk"),
    (clock_finding(0.25), Level.WARN, False, "Clock jump: the wall clock moved +0.250 s", "time synchronisation"),
    (recorder_finding(True, "disk full"), Level.ERROR, True, "Recording failed: disk full", "start a new recording"),
]


@pytest.mark.parametrize(("finding", "level", "sound", "title", "action"), RULES,
                         ids=[f"{r[0].subject}-{r[0].code}-{r[1].name}" for r in RULES])
def test_every_rule_says_what_is_wrong_what_it_means_and_what_to_do(finding, level, sound, title, action):
    assert finding.level == level and finding.sound is sound and finding.code
    assert finding.title.startswith(title) and action in finding.action and finding.meaning
    assert finding.text == f"{finding.title}. {finding.meaning} {finding.action}"


def test_healthy_subjects_are_ok_and_quiet():
    healthy = [stream_finding(stream("cameras/cab"), THRESHOLDS), device_finding("camera/cab", Health.OK),
               command_finding("active", "", True), bus_finding("can0", can.BusState.ACTIVE, 0),
               disk_finding(9e10, None, "/data", THRESHOLDS), clock_finding(None), recorder_finding(True, "")]
    assert all(f.level == Level.OK and not f.sound and not f.code and not f.title for f in healthy)


def test_a_gap_while_recording_is_loud_and_before_recording_a_warning_of_what_would_happen():
    idle = stream_finding(stream("cameras/cab", staleness_s=5.0), THRESHOLDS)
    recording = stream_finding(stream("cameras/cab", staleness_s=5.0, recording=True), THRESHOLDS)
    assert "recording started now would have a gap" in idle.meaning and not idle.sound
    assert recording.meaning == "This recording will have a gap." and recording.sound
    assert recording.since_s == 5.0


def test_alerts_are_loudest_first_then_oldest_first_and_a_fault_alerts_once():
    def finding(subject: str, level: Level, since_s: float, shown_by: str = "") -> Finding:
        return Finding(subject, level, subject, "x", since_s=since_s, shown_by=shown_by)

    findings = [finding("new warn", Level.WARN, 1.0), finding("old warn", Level.WARN, 50.0),
                finding("new error", Level.ERROR, 2.0), finding("ok", Level.OK, 0.0),
                finding("old error", Level.ERROR, 30.0), finding("can/can0", Level.ERROR, 99.0, "can bus can0")]
    assert [f.subject for f in alert_order(findings)] == ["old error", "new error", "old warn", "new warn"]


def test_onsets_say_since_when_a_problem_holds():
    now = {"t": 100.0}
    onsets = Onsets(clock=lambda: now["t"])
    assert onsets.held_s("disk", "disk") == 0.0
    now["t"] = 112.0
    assert onsets.held_s("disk", "disk") == 12.0
    assert onsets.held_s("disk", "other") == 0.0  # another problem of the same subject starts anew
    onsets.held_s("disk", "")  # healthy again
    now["t"] = 130.0
    assert onsets.held_s("disk", "other") == 0.0


@pytest.fixture
def running(tmp_path: Path):
    options = SimSessionOptions(out_dir=tmp_path, cameras=1, width=160, height=120, fps=10)
    station = RunningStation.start(simulated_station(options), HealthThresholds(stale_after_s=0.3), host=None)
    yield station
    station.stop()


def alerts(running: RunningStation) -> dict[str, dict]:
    return {a["id"]: a for a in running.station.status()["alerts"]}


def test_silent_can_bus_and_frozen_camera_on_a_running_station(running):
    runtime = running.runtime
    wait_for(lambda: runtime.can_rates().get("can0", 0) > 0 and not alerts(running), message="all well")
    status = running.station.status()
    assert status["can"][0]["state"] == "ok" and not status["camera_frames"]["side"]["frozen"]

    # the machine and the station's commands go quiet: the bus is error active, but carries nothing
    assert runtime.machine is not None and runtime.link is not None
    runtime.machine.stop()
    runtime.link.stop()
    wait_for(lambda: "can bus can0:can_silent" in alerts(running), message="silent bus alert")
    silent = alerts(running)["can bus can0:can_silent"]
    assert silent["level"] == "warn" and not silent["sound"] and silent["title"].startswith("CAN bus can0: silent")
    status = running.station.status()
    assert status["can"][0]["state"] == "silent" and status["can"][0]["bus_state"] == "active"
    can_stream = next(s for s in status["streams"] if s["path"] == "can/can0")
    assert can_stream["state"] == "silent" and not any(a["subject"] == "can/can0" for a in status["alerts"])

    # the camera stops delivering: its preview is frozen, and the stream alert says since when
    runtime.cameras["side"].stop()
    wait_for(lambda: running.station.status()["camera_frames"]["side"]["frozen"], message="frozen preview")
    wait_for(lambda: "cameras/side:stream_stale" in alerts(running), message="camera alert")
    first = alerts(running)["cameras/side:stream_stale"]
    wait_for(lambda: alerts(running)["cameras/side:stream_stale"]["since_s"] > first["since_s"] + 0.2,
             message="the alert's age grows")
    assert alerts(running)["cameras/side:stream_stale"]["since_wall"] == pytest.approx(first["since_wall"], abs=0.2)

    # recording: the silent bus becomes an error that sounds, listed before every warning
    assert running.station.controller.act("start", "test").ok
    wait_for(lambda: alerts(running)["can bus can0:can_silent"]["level"] == "error", message="silent while recording")
    listed = running.station.status()["alerts"]
    assert listed[0]["level"] == "error" and all(a["level"] == "error" for a in listed[:3])
    assert [a["level"] for a in listed] == sorted((a["level"] for a in listed), key=lambda x: x != "error")
    errors = [a for a in listed if a["level"] == "error"]
    assert [a["since_s"] for a in errors] == sorted((a["since_s"] for a in errors), reverse=True)
    assert alerts(running)["can bus can0:can_silent"]["sound"]
    assert "CAN bus can0: silent" in status_line(running.station.status())
