import shutil
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

from excap.episode.reader import EpisodeReader
from excap.review.panel import (
    HEADER_HEIGHT,
    ORANGE,
    PANEL_HEIGHT,
    PanelState,
    draw_panel,
    format_signal,
    stick_layout,
)
from excap.review.render import MAX_HOLD_S, MAX_UPSCALE, MIN_WIDTH, render_review_video, review_layout, review_timing


def _read_video(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def _expected_frames(sim_episode, cameras: list[str], fps: float) -> int:
    with h5py.File(sim_episode, "r") as f:
        firsts = [int(f[f"cameras/{c}/t_ns"][0]) for c in cameras]
        lasts = [int(f[f"cameras/{c}/t_ns"][-1]) for c in cameras]
    return int(np.floor((max(lasts) - max(firsts)) * fps / 1e9 + 1e-9)) + 1


def test_review_video_decodes_with_the_expected_frames_and_size(sim_episode, tmp_path, capsys):
    out = tmp_path / "review.mp4"
    count = render_review_video(sim_episode, out, progress=False)
    assert capsys.readouterr().err == ""  # no progress bar when asked not to
    with h5py.File(sim_episode, "r") as f:
        fps = float(f["cameras/side"].attrs["nominal_fps"])  # the first camera's rate
        width, height = int(f["cameras/side"].attrs["width"]), int(f["cameras/side"].attrs["height"])
    assert count == _expected_frames(sim_episode, ["side", "top"], fps)
    frames = _read_video(out)
    assert len(frames) == count
    # two 320x240 views side by side are narrower than the panel: scaled up to fill MIN_WIDTH
    scale = min(MAX_UPSCALE, MIN_WIDTH / (2 * width))
    view_height, view_width = round(height * scale / 2) * 2, round(width * scale / 2) * 2
    assert frames[0].shape == (HEADER_HEIGHT + view_height + PANEL_HEIGHT, max(MIN_WIDTH, 2 * view_width), 3)
    with EpisodeReader(sim_episode) as episode:
        layout = review_layout(episode)
        assert (layout.width, layout.height) == (frames[0].shape[1], frames[0].shape[0])
        # the left view of output frame k shows the side camera's latest frame at or before the frame time
        side = episode.camera("side")
        begin = max(int(side.t_ns[0]), int(episode.camera("top").t_ns[0]))
        k = count // 2
        expected = side.image(side.index_at(begin + round(k * 1e9 / fps)))
        expected = cv2.resize(expected, (layout.view_widths[0], layout.view_height))
        shown = frames[k][HEADER_HEIGHT:HEADER_HEIGHT + layout.view_height, :layout.view_widths[0]]
        top_rows = slice(0, layout.view_height - 40)  # above the camera label
        assert np.abs(shown[top_rows].astype(int) - expected[top_rows].astype(int)).mean() < 10


def test_review_video_of_one_camera_at_a_chosen_rate(sim_episode, tmp_path, capsys):
    out = tmp_path / "top.avi"
    count = render_review_video(sim_episode, out, fps=5.0, cameras=["top"])
    assert "review" in capsys.readouterr().err  # the progress bar goes to stderr
    assert count == _expected_frames(sim_episode, ["top"], 5.0)
    frames = _read_video(out)
    assert len(frames) == count
    assert frames[0].shape[1] == MIN_WIDTH


def _edited_copy(sim_episode: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / sim_episode.name
    shutil.copyfile(sim_episode, copy)
    with h5py.File(copy, "r+") as handle:
        edit(handle)
    return copy


def _with_no_values(handle: h5py.File) -> None:
    """What ROS recordings hold: NaN commands and axes (no value), infinite and NaN machine signals."""
    commands = handle["control/commands"]
    commands[::2] = np.nan
    axes = handle["joystick/operator/axes"]
    axes[::3] = np.nan
    handle["can/can0/decoded/EEC1/EngSpeed"][::2] = np.inf


def test_nan_commands_axes_and_signals_render(sim_episode, tmp_path):
    copy = _edited_copy(sim_episode, tmp_path, _with_no_values)
    out = tmp_path / "nan.mp4"
    count = render_review_video(copy, out, fps=5.0, cameras=["side"], progress=False)
    assert count == _expected_frames(copy, ["side"], 5.0) == len(_read_video(out))


def test_the_panel_draws_no_value_as_a_gap():
    def panel(value: float) -> np.ndarray:
        state = PanelState(1.0, 4.0, {"left_x": value, "left_y": value, "travel_left": value},
                           [("boom", value)], True, [("engine speed", format_signal(value, "rpm"))], None, 0.0,
                           [(value, True)])
        image = np.zeros((PANEL_HEIGHT, MIN_WIDTH, 3), np.uint8)
        draw_panel(image, state)
        return image

    def orange_in_boom_bar(image: np.ndarray) -> bool:
        bar = image[58 - 7:58 + 8, 500 + 110:500 + 310]  # the first command's bar (review_panel layout)
        return bool((bar == ORANGE).all(axis=2).any())

    assert orange_in_boom_bar(panel(0.5))
    for value in (float("nan"), float("inf"), float("-inf")):
        assert not orange_in_boom_bar(panel(value))
    assert not np.array_equal(panel(float("nan")), panel(0.0))  # "n/a" is written instead of a number


def test_a_huge_time_gap_is_left_out_and_reported(sim_episode, tmp_path):
    def far_last_frame(handle: h5py.File) -> None:
        handle["cameras/side/t_ns"][-1] = handle["cameras/side/t_ns"][-1] + 10**15  # 11.6 days later

    copy = _edited_copy(sim_episode, tmp_path, far_last_frame)
    notes: list[str] = []
    started = time.monotonic()
    count = render_review_video(copy, tmp_path / "gap.mp4", fps=5.0, cameras=["side"], progress=False,
                                note=notes.append)
    assert time.monotonic() - started < 60
    with h5py.File(copy, "r") as handle:
        t_ns = handle["cameras/side/t_ns"][()]
    before_gap = int(np.floor((t_ns[-2] - t_ns[0]) * 5.0 / 1e9 + 1e-9)) + 1
    assert before_gap <= count <= before_gap + 5 * MAX_HOLD_S + 2  # the frames, plus the far frame held briefly
    assert len(notes) == 1 and "left out" in notes[0] and "without samples" in notes[0]
    with EpisodeReader(copy) as reader:
        capped = review_timing(reader, 5.0, ["side"], max_frames=7)
    assert capped.capped and len(capped.times) == 7


def test_views_take_their_size_from_the_frames(sim_episode, tmp_path):
    def wrong_size(handle: h5py.File) -> None:
        handle["cameras/side"].attrs.update({"width": 100, "height": 1000})

    copy = _edited_copy(sim_episode, tmp_path, wrong_size)
    with EpisodeReader(copy) as wrong, EpisodeReader(sim_episode) as right:
        assert review_layout(wrong) == review_layout(right)


def test_sticks_are_named_by_the_axes():
    excavator = stick_layout(["left_x", "left_y", "right_x", "right_y", "travel_left", "travel_right"])
    assert excavator.sticks == (("left", "left_x", "left_y"), ("right", "right_x", "right_y"))
    assert excavator.bars == ("travel_left", "travel_right")
    device = stick_layout(["ABS_X", "ABS_Y", "ABS_RX", "ABS_RY", "ABS_Z"])  # a gamepad's own axis names
    assert device.labels == ("ABS", "ABS_R", "ABS_Z")
    many = stick_layout([f"axis{k}" for k in range(12)])  # no pairs: as many bars as fit beside the commands
    assert many.sticks == () and many.bars == tuple(f"axis{k}" for k in range(8))
