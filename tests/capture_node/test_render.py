import cv2
import h5py
import numpy as np

from capture_node.episode_reader import EpisodeReader
from capture_node.render import MAX_UPSCALE, MIN_WIDTH, render_review_video, review_layout
from capture_node.review_panel import HEADER_HEIGHT, PANEL_HEIGHT


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
