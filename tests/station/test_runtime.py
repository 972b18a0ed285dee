"""One station runtime, several episodes: a serial joystick on a real pty, the simulated machine on a
virtual CAN bus answering the command path, and a camera reading a real video file. Devices stay open
between episodes; each episode holds exactly its own time span."""

import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from excap.core.errors import EpisodeError
from excap.drivers.base import Health
from excap.drivers.joystick.serial_peer import SerialPeer, SerialPeerConfig
from excap.episode.validation import validate_episode
from excap.station.config import load_station_config
from excap.station.runtime import StationRuntime
from tests.support.station_devices import AXES, BUTTONS, write_video
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def station_file(tmp_path: Path, port: str, video: Path) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump({
        "schema": "excap.station", "schema_version": 1,
        "station": {"id": "test-station", "out_dir": "episodes"},
        "machine": {"profile": "excavator_20t", "pattern": "sae", "id": "exc-test", "simulated": True},
        "session": {"operator": "op-1", "site": "test-site", "task": "test"},
        "joysticks": [{"name": "console", "type": "serial", "port": port, "protocol": "exjs1",
                       "axes": AXES, "buttons": BUTTONS}],
        "inputs": {"axes": {"left_x": "console.lx", "left_y": "console.ly", "right_x": "console.rx",
                            "right_y": "console.ry", "travel_left": "console.tl", "travel_right": "console.tr"},
                   "buttons": {"enable": "console.trigger"}},
        "can": [{"name": "can0", "interface": "virtual", "channel": f"excap-runtime-{uuid.uuid4().hex}"}],
        "cameras": [{"name": "boom", "source": str(video), "loop": True}],
        # a generous input timeout: these tests are about recording, not about a loaded host's scheduling
        "command": {"bus": "can0", "stale_timeout_ms": 500},
    }))
    return path


def recorded_t_ns(path: Path) -> dict[str, np.ndarray]:
    """Every stream's t_ns column (events included), by stream path."""
    found: dict[str, np.ndarray] = {}

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and name.endswith("/t_ns"):
            found[name[: -len("/t_ns")]] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


def span(path: Path) -> tuple[int, int]:
    with h5py.File(path, "r") as f:
        return int(f.attrs["start_t_ns"]), int(f.attrs["end_t_ns"])


def test_runtime_records_consecutive_episodes_of_their_own_time_span(tmp_path, pty_pair):
    master, slave_path = pty_pair
    video = tmp_path / "boom.avi"
    write_video(video)
    stick = {"state": ((0.0,) * 6, (1, 0, 0))}  # enable held, sticks centred
    peer = SerialPeer(master, SerialPeerConfig(protocol="exjs1", rate_hz=100.0), lambda _i: stick["state"]).start()
    config = load_station_config(station_file(tmp_path, slave_path, video))
    commands: list = []
    joystick: list = []
    frames: list = []
    events: list = []
    runtime = StationRuntime(config)
    runtime.subscribe(command=commands.append, joystick=joystick.append, frame=frames.append,
                      event=lambda kind, t_ns, detail: events.append((kind, t_ns, detail)))
    paths = []
    try:
        with pytest.raises(EpisodeError, match="not open"):
            runtime.start_episode()
        runtime.open()
        # live state before any episode: commands flow, devices report, the machine answers
        wait_for(lambda: runtime.command is not None and runtime.command.link_state == "active",
                 message="commands enabled")
        wait_for(lambda: runtime.latest_frame("boom") is not None and "console" in runtime.joystick_samples(),
                 message="live frame and joystick sample")
        wait_for(lambda: runtime.signal("can0", "BoomSSI2", "PitchAngleExRange") is not None,
                 message="decoded machine state")
        wait_for(lambda: runtime.can_rates().get("can0", 0) > 100, timeout=10, message="CAN rate")
        assert runtime.latest_frame("boom").jpeg[:2] == b"\xff\xd8"
        assert runtime.decoded("can0")["can0/BoomSSI2"]["PitchAngleExRange"].unit == "deg"
        health = runtime.health()
        assert health["joystick/console"] == Health.OK and health["can/can0"] == Health.OK
        assert health["camera/boom"] == Health.OK and health["machine"] == Health.OK
        assert not runtime.recording and runtime.recorder is None

        def commanding(function: str, axes: tuple[float, ...]):
            """A condition that holds once `function` is commanded; re-enables from neutral after a stale moment."""
            index = runtime.profile.functions.index(function)

            def condition() -> bool:
                command = runtime.command
                if command.link_state == "neutralised":  # as an operator would: release enable, sticks centred
                    stick["state"] = ((0.0,) * 6, (0, 0, 0))
                elif command.link_state == "disabled":
                    stick["state"] = ((0.0,) * 6, (1, 0, 0))
                else:
                    stick["state"] = (axes, (1, 0, 0))
                return command.enabled and abs(command.values[index]) > 0.5
            return condition

        def recorded(path: str) -> int:
            recorder = runtime.recorder
            return next((s.accepted for s in recorder.status() if s.path == path), 0) if recorder else 0

        # episode 1: boom up
        runtime.start_episode({"task": "first"})
        with pytest.raises(EpisodeError, match="already recording"):
            runtime.start_episode()
        wait_for(commanding("boom", (0.0, -0.9, 0.0, 0.0, 0.0, 0.0)), message="boom up")  # SAE: left stick back
        wait_for(lambda: recorded("control") > 50 and recorded("cameras/boom") > 10, message="episode 1 data")
        assert runtime.mark("first marker") == 1
        paths.append(runtime.stop_episode())
        with pytest.raises(EpisodeError, match="not recording"):
            runtime.mark("between")

        # between episodes: commands keep flowing (and are sent to the machine), nothing is recorded
        between, sent = len(commands), runtime.link.sent_frames
        stick["state"] = ((0.0,) * 6, (1, 0, 0))
        wait_for(lambda: len(commands) > between + 25 and runtime.link.sent_frames > sent + 25,
                 message="commands sent between episodes")

        # a discarded episode leaves no file
        runtime.start_episode()
        discarded = runtime.discard_episode()
        assert discarded.discarded and not list((tmp_path / "episodes").glob(f"{discarded.episode_id}*"))

        # episode 2: bucket, labelled
        runtime.start_episode({"task": "second"})
        wait_for(commanding("bucket", (0.0, 0.0, 0.7, 0.0, 0.0, 0.0)), message="bucket")
        wait_for(lambda: recorded("control") > 50 and recorded("cameras/boom") > 10, message="episode 2 data")
        paths.append(runtime.stop_episode(outcome="success"))
        after = len(commands)
        wait_for(lambda: len(commands) > after + 5, message="commands after the episodes")
    finally:
        runtime.close()
        peer.stop()
    assert runtime.close() is None and not runtime.is_open

    spans = [span(p) for p in paths]
    assert spans[0][1] < spans[1][0]
    for path, (start, end) in zip(paths, spans, strict=True):
        assert validate_episode(path) == []
        streams = recorded_t_ns(path)
        assert {"control", "joystick/console", "cameras/boom", "can/can0", "events"} <= set(streams)
        for name, t_ns in streams.items():
            if name == "events":
                t_ns = t_ns[:-1]  # the recorder stamps its `stop` event just after end_t_ns
            assert len(t_ns) == 0 or (start <= t_ns.min() and t_ns.max() <= end), name
        # nothing seen live within the episode's recorded span is missing from it
        for name, live in (("control", [c.t_ns for c in commands]), ("joystick/console", [s.t_ns for s in joystick]),
                           ("cameras/boom", [f.t_ns for f in frames])):
            t_ns = streams[name]
            assert len(t_ns) > 5, name
            expected = [t for t in live if start <= t <= t_ns.max()]
            assert t_ns.tolist() == expected, name
    # commands flowed between the episodes, and none of them were recorded
    assert any(spans[0][1] < c.t_ns < spans[1][0] for c in commands)

    with h5py.File(paths[0], "r") as f:
        assert f.attrs["task"] == "first" and f.attrs["operator_id"] == "op-1" and f.attrs["outcome"] == "unlabeled"
        kinds = [k.decode() for k in f["events/kind"][()]]
        assert kinds.count("marker") == 1
        names = list(f["control/commands"].attrs["names"])
        assert f["control/commands"][:, names.index("boom")].max() > 0.5
        assert f["can/can0/decoded/BJM1/t_ns"].shape[0] > 20
    with h5py.File(paths[1], "r") as f:
        assert f.attrs["task"] == "second" and f.attrs["outcome"] == "success"
        kinds = [k.decode() for k in f["events/kind"][()]]
        assert "marker" not in kinds
        names = list(f["control/commands"].attrs["names"])
        assert np.abs(f["control/commands"][:, names.index("bucket")]).max() > 0.5
    assert any(kind == "marker" and detail["text"] == "first marker" for kind, _t, detail in events)
