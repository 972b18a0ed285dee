import json

import cv2
import h5py
import numpy as np
import pytest

from excap.core.errors import EpisodeError
from excap.episode.reader import EpisodeReader
from excap.episode.steps import step_times

MS = 1_000_000
BASE = 5_000 * MS  # t_ns of the crafted episode's start

CONTROL_MS = [0, 100, 200, 300, 400]
CAMERA_MS = [50, 150, 250, 350]
EEC1_MS = [20 + 50 * k for k in range(9)]  # 20, 70, ..., 420
JOYSTICK_MS = [10, 110, 120, 330, 410]  # a gap from 120 to 330 ms
EVENTS = [(0, "start", {}), (130, "marker", {"label": "bucket full"}), (420, "stop", {"reason": "end"})]


def _t(values_ms: list[int]) -> np.ndarray:
    return BASE + np.asarray(values_ms, dtype=np.int64) * MS


def _jpeg(index: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", np.full((16, 16, 3), 20 + 40 * index, np.uint8))
    assert ok
    return data.reshape(-1)


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("crafted") / "crafted.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update({"schema": "excap.episode", "schema_version": 1, "episode_id": "crafted",
                        "start_t_ns": BASE, "end_t_ns": BASE + 420 * MS, "duration_s": 0.42,
                        "machine_kind": "excavator"})
        control = f.create_group("control")
        control["t_ns"] = _t(CONTROL_MS)
        control["commands"] = np.array([[k / 10, -k / 10] for k in range(5)], dtype=np.float32)
        control["commands"].attrs["names"] = ["boom", "arm"]
        control["enabled"] = np.array([True, True, True, True, False])
        camera = f.create_group("cameras/front")
        camera.attrs.update({"width": 16, "height": 16, "encoding": "jpeg", "nominal_fps": 10.0})
        camera["t_ns"] = _t(CAMERA_MS)
        camera["t_device_ns"] = _t(CAMERA_MS)
        frames = camera.create_dataset("frames", (len(CAMERA_MS),), dtype=h5py.vlen_dtype(np.uint8))
        for k in range(len(CAMERA_MS)):
            frames[k] = _jpeg(k)
        eec1 = f.create_group("can/can0/decoded/EEC1")
        eec1["t_ns"] = _t(EEC1_MS)
        eec1["source_address"] = np.zeros(len(EEC1_MS), np.uint8)
        eec1["EngSpeed"] = 1000.0 + np.arange(len(EEC1_MS))
        eec1["EngSpeed"].attrs["unit"] = "rpm"
        dm1 = f.create_group("can/can0/decoded/DM1")  # a message that never arrived
        dm1["t_ns"] = np.zeros(0, np.int64)
        dm1["source_address"] = np.zeros(0, np.uint8)
        dm1["Lamp"] = np.zeros(0, np.float64)
        pad = f.create_group("joystick/pad")
        pad["t_ns"] = _t(JOYSTICK_MS)
        pad["t_device_ns"] = _t(JOYSTICK_MS)
        pad["axes"] = np.array([[k, -k] for k in range(5)], dtype=np.float32)
        pad["buttons"] = np.array([[k % 2] for k in range(5)], dtype=np.uint8)
        events = f.create_group("events")
        events["t_ns"] = _t([e[0] for e in EVENTS])
        text = h5py.string_dtype()
        events.create_dataset("kind", data=[e[1] for e in EVENTS], dtype=text)
        events.create_dataset("detail", data=[json.dumps(e[2]) for e in EVENTS], dtype=text)
    return path


def test_streams_metadata_and_events(crafted):
    with EpisodeReader(crafted) as episode:
        assert episode.metadata["episode_id"] == "crafted" and episode.metadata["start_t_ns"] == BASE
        info = {s.path: s for s in episode.streams}
        assert {p: s.kind for p, s in info.items()} == {
            "control": "control", "cameras/front": "camera", "can/can0/decoded/EEC1": "can_decoded",
            "can/can0/decoded/DM1": "can_decoded", "joystick/pad": "joystick", "events": "events"}
        assert info["control"].samples == 5 and info["control"].first_t_ns == BASE
        assert info["control"].last_t_ns == BASE + 400 * MS
        assert info["control"].columns == ("t_ns", "commands", "enabled")
        assert info["can/can0/decoded/DM1"].samples == 0 and info["can/can0/decoded/DM1"].first_t_ns is None
        assert episode.command_names == ["boom", "arm"]
        assert episode.events() == [(BASE, "start", {}), (BASE + 130 * MS, "marker", {"label": "bucket full"}),
                                    (BASE + 420 * MS, "stop", {"reason": "end"})]


def test_random_access_rows_and_camera_images(crafted):
    with EpisodeReader(crafted) as episode:
        control = episode.stream("control")
        assert len(control) == 5
        row = control[3]
        assert row["t_ns"] == BASE + 300 * MS and row["enabled"] is True
        np.testing.assert_allclose(row["commands"], [0.3, -0.3], rtol=1e-6)
        assert control[-1]["enabled"] is False
        with pytest.raises(IndexError):
            control[5]
        camera = episode.camera("front")
        for k in (2, 0, 3, 1):  # any order
            assert camera[k]["t_ns"] == BASE + CAMERA_MS[k] * MS
            assert isinstance(camera[k]["frames"], bytes)
            image = camera.image(k)
            assert image.shape == (16, 16, 3)
            assert abs(float(image.mean()) - (20 + 40 * k)) < 3
        events = episode.stream("events")
        assert events[1]["kind"] == "marker" and json.loads(events[1]["detail"]) == {"label": "bucket full"}
        np.testing.assert_array_equal(control.t_ns, _t(CONTROL_MS))


def test_index_at_edges(crafted):
    with EpisodeReader(crafted) as episode:
        control = episode.stream("control")
        assert control.index_at(BASE - 1) == -1  # before the first sample
        assert control.index_at(BASE) == 0  # exactly at a sample: that sample
        assert control.index_at(BASE + 99 * MS) == 0
        assert control.index_at(BASE + 100 * MS) == 1
        assert control.index_at(BASE + 100 * MS + 1) == 1
        assert control.index_at(BASE + 10_000 * MS) == 4  # after the last sample: the last
        assert episode.stream("can/can0/decoded/DM1").index_at(BASE + 10_000 * MS) == -1  # empty stream
        np.testing.assert_array_equal(control.indices_at(_t([-1, 0, 250, 400, 999])), [-1, 0, 2, 4, 4])


# step time (ms): (control index, camera index, EEC1 index, joystick index), hand-computed from the rule
EXPECTED_20HZ = {
    50: (0, 0, 0, 0),
    100: (1, 0, 1, 0),
    150: (1, 1, 2, 2),
    200: (2, 1, 3, 2),
    250: (2, 2, 4, 2),
    300: (3, 2, 5, 2),
    350: (3, 3, 6, 3),
}


def test_steps_follow_the_alignment_rule(crafted):
    with EpisodeReader(crafted) as episode:
        steps = list(episode.steps(20.0, state_signals=["EEC1.EngSpeed"]))
    # t0 = 50 ms (the camera's first frame, the last stream to start); end = 350 ms (the camera's last frame)
    assert [s.t_ns for s in steps] == [BASE + t * MS for t in EXPECTED_20HZ]
    assert [s.index for s in steps] == list(range(7))
    for step, (t_ms, (c, cam, eec, joy)) in zip(steps, EXPECTED_20HZ.items(), strict=True):
        assert step.sources == {"control": c, "cameras/front": cam, "can/can0/decoded/EEC1": eec,
                                "joystick/pad": joy}
        np.testing.assert_allclose(step.action, [c / 10, -c / 10], rtol=1e-6)
        assert step.action_age_ns == (t_ms - CONTROL_MS[c]) * MS
        assert step.obs_age_ns["cameras/front"] == (t_ms - CAMERA_MS[cam]) * MS
        assert step.obs_age_ns["state"] == (t_ms - EEC1_MS[eec]) * MS == 30 * MS
        assert step.obs_age_ns["joystick/pad/axes"] == (t_ms - JOYSTICK_MS[joy]) * MS
        assert step.obs_age_ns["joystick/pad/buttons"] == step.obs_age_ns["joystick/pad/axes"]
        assert abs(float(step.observation["cameras/front"].mean()) - (20 + 40 * cam)) < 3
        np.testing.assert_array_equal(step.observation["state"], [1000.0 + eec])
        np.testing.assert_array_equal(step.observation["joystick/pad/axes"], [joy, -joy])
        np.testing.assert_array_equal(step.observation["joystick/pad/buttons"], [joy % 2])
    # the joystick gap (120 -> 330 ms): age grows past one period but stays below the gap
    assert steps[5].obs_age_ns["joystick/pad/axes"] == 180 * MS < 210 * MS


def test_steps_window_without_cameras_and_jpeg_bytes(crafted):
    with EpisodeReader(crafted) as episode:
        window = list(episode.steps(20.0, start_ns=BASE + 120 * MS, end_ns=BASE + 260 * MS, cameras=False,
                                    state_signals=[], joysticks=False))
        assert [s.t_ns for s in window] == [BASE + t * MS for t in (120, 170, 220)]
        assert set(window[0].observation) == set() and [s.sources["control"] for s in window] == [1, 1, 2]
        # without cameras, t0 is the first time control, EEC1 and the joystick all have samples (20 ms)
        early = next(episode.steps(10.0, cameras=False))
        assert early.t_ns == BASE + 20 * MS and set(early.observation) == {
            "state", "joystick/pad/axes", "joystick/pad/buttons"}
        raw = next(episode.steps(10.0, decode=False))
        assert raw.observation["cameras/front"] == episode.camera("front")[0]["frames"]
        assert episode.state_signals() == ["EEC1.EngSpeed"]  # the excavator's defaults this episode has


def test_default_state_signals_follow_the_machine_kind(crafted, tmp_path):
    loader = tmp_path / "loader.h5"
    loader.write_bytes(crafted.read_bytes())
    with h5py.File(loader, "r+") as f:
        f.attrs["machine_kind"] = "wheel_loader"
        linkage = f.create_group("can/can0/decoded/LoaderLinkage")
        linkage["t_ns"] = _t(EEC1_MS)
        linkage["source_address"] = np.full(len(EEC1_MS), 0x27, np.uint8)
        linkage["LiftAngle"] = np.linspace(-30.0, 10.0, len(EEC1_MS))
    with EpisodeReader(loader) as episode:
        assert episode.state_signals() == ["LoaderLinkage.LiftAngle", "EEC1.EngSpeed"]  # the loader's order
        step = next(episode.steps(10.0, cameras=False, joysticks=False))
        assert step.observation["state"].tolist() == [-30.0, 1000.0]
    with h5py.File(loader, "r+") as f:
        del f.attrs["machine_kind"]
    with EpisodeReader(loader) as episode:
        assert episode.state_signals() == []  # no kind, no defaults; named signals still work
        assert episode.state_signals(["LoaderLinkage.LiftAngle"]) == ["LoaderLinkage.LiftAngle"]


def test_missing_or_empty_state_signals_are_errors(crafted):
    with EpisodeReader(crafted) as episode:
        with pytest.raises(EpisodeError, match=r"no decoded CAN signal 'EEC2\.Missing'"):
            episode.steps(10.0, state_signals=["EEC2.Missing"])
        with pytest.raises(EpisodeError, match="has no samples"):
            episode.steps(10.0, state_signals=["DM1.Lamp"])
        with pytest.raises(EpisodeError, match="no stream"):
            episode.stream("cameras/rear")


def test_foreign_files_raise_one_line_episode_errors(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    for path, message in ((text, "not an HDF5 file"), (foreign, "not an excap episode"),
                          (tmp_path / "missing.h5", "no such file")):
        with pytest.raises(EpisodeError, match=message) as raised:
            EpisodeReader(path)
        assert "\n" not in str(raised.value) and str(path) in str(raised.value)


def test_sim_episode_steps_respect_the_error_bound(sim_episode):
    with EpisodeReader(sim_episode) as episode:
        kinds = {s.kind for s in episode.streams}
        assert {"control", "joystick", "can", "can_decoded", "camera", "events"} <= kinds
        assert episode.state_signals() == ["BoomSSI2.PitchAngleExRange", "ArmSSI2.PitchAngleExRange",
                                           "BucketSSI2.PitchAngleExRange", "SwingStatus.SwingAngle",
                                           "EEC1.EngSpeed"]
        steps = list(episode.steps(10.0))
        required = list(steps[0].sources)
        begin = max(int(episode.stream(p).t_ns[0]) for p in required)
        end = min(int(episode.stream(p).t_ns[-1]) for p in required)
        assert len(steps) == len(step_times(begin, end, 10.0)) == (end - begin) // 100_000_000 + 1
        assert steps[0].t_ns == begin
        for step in steps:
            assert step.action.shape == (len(episode.command_names),) and step.observation["state"].shape == (5,)
            assert step.observation["cameras/side"].shape == (240, 320, 3)
            for path, index in step.sources.items():
                t_ns = episode.stream(path).t_ns
                age = step.t_ns - int(t_ns[index])
                assert age >= 0
                if index + 1 < len(t_ns):
                    assert age < int(t_ns[index + 1]) - int(t_ns[index])  # below the interval around t
