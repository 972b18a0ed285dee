"""One set of health rules: the station page and the ROS node's /diagnostics report the same level for the same
condition (stale joystick, camera below rate, disk low, CAN bus-off), both from `excap.station.health`."""

import uuid
from pathlib import Path

import can
import pytest

from excap.drivers.base import Health
from excap.record.can_capture import CAN_ERR_BUSOFF
from excap.station.app import RunningStation
from excap.station.health import HealthThresholds, Level, device_finding, disk_finding
from excap.station.sim import SimSessionOptions, simulated_station
from tests.support.requirements import require_ros
from tests.support.waiting import wait_for

require_ros()

from excap.ros.diagnostics import node_thresholds, station_diagnostics  # noqa: E402

STALL = (1.5, 3.0)  # the scripted operator's joystick is silent from 1.5 s to 4.5 s after the station opens


def ros_levels(running: RunningStation) -> dict[str, str]:
    statuses = station_diagnostics(running.runtime, running.station.monitor, "sim-excavator-01")
    names = {0: "ok", 1: "warn", 2: "error"}
    return {s.name.removeprefix("excap: "): names[s.level[0] if isinstance(s.level, bytes) else s.level]
            for s in statuses}


def agree(running: RunningStation, subject: str, level: str) -> bool:
    """The page (its status JSON) and /diagnostics both give `subject` the level `level`."""
    page = running.station.status()["levels"].get(subject)
    return page == level and ros_levels(running).get(subject) == level


@pytest.fixture
def running(tmp_path: Path):
    options = SimSessionOptions(out_dir=tmp_path, cameras=1, width=160, height=120, fps=10,
                                joystick_stalls=(STALL,))
    thresholds = HealthThresholds(stale_after_s=0.3, disk_warn_bytes=1e18, camera_min_rate=100.0,
                                  camera_settle_s=0.0)
    station = RunningStation.start(simulated_station(options), thresholds, host=None)
    yield station
    station.stop()


def test_page_and_diagnostics_give_the_same_level_for_the_same_condition(running):
    # a camera below its rate (the threshold asks 100x the nominal rate) and a disk "nearly full" (1e18 bytes wanted)
    wait_for(lambda: agree(running, "cameras/side", "warn"), message="camera below rate: warn on both")
    wait_for(lambda: agree(running, "disk", "error"), message="disk low: error on both")
    wait_for(lambda: agree(running, "can bus can0", "ok"), message="CAN bus error active: ok on both")
    # CAN bus-off, as a SocketCAN error frame on the bus
    with can.Bus(interface="virtual", channel=running.runtime.config.cans[0].channel) as peer:
        peer.send(can.Message(arbitration_id=CAN_ERR_BUSOFF, is_error_frame=True, is_extended_id=False,
                              data=bytes(8)))
    wait_for(lambda: agree(running, "can bus can0", "error"), message="CAN bus-off: error on both")
    # the joystick goes silent: its stream is stale and the commands are neutralised, on both
    wait_for(lambda: agree(running, "joystick/operator", "error"), message="stale joystick: error on both")
    wait_for(lambda: agree(running, "command link", "error"), message="neutralised commands: error on both")
    codes = {w["code"] for w in running.station.status()["warnings"]}
    assert {"stream_stale", "neutralised", "camera_slow", "disk"} <= codes
    # ROS says it in the page's plain words, with since when
    joystick = next(s for s in station_diagnostics(running.runtime, running.station.monitor, "x")
                    if s.name == "excap: joystick/operator")
    assert joystick.message.startswith("Joystick operator: no data for") and "Check the joystick cable" in \
        joystick.message
    assert float({kv.key: kv.value for kv in joystick.values}["since_s"]) >= 0.0
    # the joystick reports again and the scripted operator re-arms: both see it recover
    wait_for(lambda: agree(running, "joystick/operator", "ok") and agree(running, "command link", "ok"),
             message="joystick and commands back: ok on both")


def test_node_parameters_are_the_same_thresholds():
    thresholds = node_thresholds(stale_after_s=2.0, min_free_gb=2.0)
    assert thresholds.stale_after_s == 2.0 and thresholds.disk_warn_bytes == 2e9 and thresholds.disk_error == 5e8
    assert disk_finding(4e8, None, "/x", thresholds).level == Level.ERROR
    assert disk_finding(1e9, None, "/x", thresholds).level == Level.WARN
    assert disk_finding(3e9, 60.0, "/x", thresholds).level == Level.WARN  # a minute of recording left
    assert disk_finding(3e9, None, "/x", thresholds).level == Level.OK


@pytest.mark.parametrize(("health", "level"), [(Health.OK, Level.OK), (Health.STOPPED, Level.OK),
                                               (Health.STALE, Level.WARN), (Health.DISCONNECTED, Level.ERROR),
                                               (Health.FAILED, Level.ERROR)])
def test_device_levels(health, level):
    assert device_finding(f"joystick/{uuid.uuid4().hex[:4]}", health).level == level
