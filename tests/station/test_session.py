"""A whole station from a config file: a serial joystick on a real pty, the simulated machine on a
virtual CAN bus answering the command path, and a camera reading a real video file."""

import threading
import uuid

import cv2
import h5py
import numpy as np
import pytest
import yaml

from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig
from excap.episode.validation import validate_episode
from excap.people.admin import add_operator, certify_operator
from excap.station.config import load_station_config
from excap.station.session import run_station_session
from tests.support.station_devices import AXES, BUTTONS, write_video
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

def test_station_config_session_records_every_device_and_drives_the_machine(tmp_path, pty_pair):
    master, slave_path = pty_pair
    video = tmp_path / "boom.avi"
    write_video(video)
    stick = {"state": ((0.0,) * 6, (1, 0, 0))}  # enable held, sticks centred

    def state(_index):
        return stick["state"]

    peer = SerialPeer(master, SerialPeerConfig(protocol="exjs1", rate_hz=100.0), state).start()
    config_path = tmp_path / "station.yaml"
    channel = f"excap-station-{uuid.uuid4().hex}"
    config_path.write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "test-station", "out_dir": "episodes"},
        "machine": {"profile": "excavator_20t", "pattern": "sae", "id": "exc-test", "simulated": True},
        "session": {"operator": "op-1", "site": "test-site", "task": "test"},
        "joysticks": [{"name": "console", "type": "serial", "port": slave_path, "protocol": "exjs1",
                       "axes": AXES, "buttons": BUTTONS}],
        "inputs": {"axes": {"left_x": "console.lx", "left_y": "console.ly", "right_x": "console.rx",
                            "right_y": "console.ry", "travel_left": "console.tl", "travel_right": "console.tr"},
                   "buttons": {"enable": "console.trigger"}},
        "can": [{"name": "can0", "interface": "virtual", "channel": channel}],
        "cameras": [{"name": "boom", "source": str(video), "loop": True}],
        # a generous input timeout: these tests are about recording, not about a loaded host's scheduling
        "command": {"bus": "can0", "stale_timeout_ms": 500},
    }))
    registry = tmp_path / "episodes" / ".excap" / "operators.yaml"  # op-1 is certified: recording is allowed
    add_operator(registry, "op-1")
    certify_operator(registry, "op-1", "excavator-cpcs-a59", ["excavator"], None, ref="A59-1")
    config = load_station_config(config_path)
    stop = threading.Event()
    recorders = []
    result: dict[str, object] = {}

    def run():
        result["path"] = run_station_session(config, stop, on_started=recorders.append)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: recorders, timeout=30, message="session start")
        recorder = recorders[0]

        def rows(path):
            return next((s.accepted for s in recorder.status() if s.path == path), 0)

        wait_for(lambda: rows("control") > 20, message="commands")
        stick["state"] = ((0.0, -0.9, 0.0, 0.0, 0.0, 0.0), (1, 0, 0))  # SAE: left stick back = boom up
        wait_for(lambda: rows("cameras/boom") > 10 and rows("control") > 80, message="boom commands and frames")
        peer.pause()  # the console goes silent: commands must go neutral
        paused_at = rows("control")
        wait_for(lambda: rows("control") > paused_at + 50, message="a second of commands after the silence")
    finally:
        stop.set()
        thread.join(timeout=60)
        peer.stop()
    path = result["path"]
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert f.attrs["control_pattern"] == "sae" and f.attrs["operator_id"] == "op-1"
        assert f.attrs["certification"] == "excavator-cpcs-a59 #A59-1"
        axes = f["joystick/console/axes"][()]
        assert axes.shape[1] == 6 and np.isclose(axes[:, 1], -0.9, atol=1e-3).any()
        names = list(f["control/commands"].attrs["names"])
        commands = f["control/commands"][()]
        assert commands[:, names.index("boom")].max() > 0.5
        kinds = [k.decode() for k in f["events/kind"][()]]
        assert "neutralised" in kinds
        assert not f["control/enabled"][-20:].any() and not commands[-20:].any()
        pitch = f["can/can0/decoded/BoomSSI2/PitchAngleExRange"][()]
        assert np.ptp(pitch) > 1.0  # the simulated machine obeyed the command frames
        assert f["can/can0/decoded/BJM1/t_ns"].shape[0] > 50
        frame = cv2.imdecode(f["cameras/boom/frames"][0], cv2.IMREAD_COLOR)
        assert frame.shape == (120, 160, 3)
