"""Face blurring on a real photograph: scikit-image's bundled 'astronaut' (Eileen Collins, public domain), alone
and filmed by a station camera, recorded, and exported with `excap export --blur-faces`."""

import re
import subprocess
import uuid
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from skimage import data as skimage_data

from excap.datasets.faces import FaceBlurrer
from excap.datasets.video import decode_rgb
from excap.episode.validation import validate_episode
from tests.support import report
from tests.support.commands import excap_command
from tests.support.paths import REPO


def test_blurs_the_face_of_a_real_photo() -> None:
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    blurrer = FaceBlurrer()
    faces = blurrer.detect(image)
    assert faces, f"no face found by {blurrer.backend}"
    # the astronaut's face is in the upper middle of the 512x512 photo
    assert any(150 < x + w / 2 < 300 and 60 < y + h / 2 < 200 for x, y, w, h in faces)
    blurred, count = blurrer.blur(image)
    assert count == len(faces)
    x, y, w, h = faces[0]
    face_before = image[y:y + h, x:x + w].astype(float)
    face_after = blurred[y:y + h, x:x + w].astype(float)
    assert cv2.Laplacian(face_after, cv2.CV_64F).var() < 0.1 * cv2.Laplacian(face_before, cv2.CV_64F).var()
    # far from the face nothing changes
    np.testing.assert_array_equal(blurred[400:, :100], image[400:, :100])


def test_no_face_leaves_the_frame_alone() -> None:
    frame = np.full((120, 160, 3), 90, dtype=np.uint8)
    cv2.rectangle(frame, (20, 30), (80, 90), (0, 160, 255), -1)
    blurred, count = FaceBlurrer().blur(frame)
    assert count == 0 and blurred is frame


# -- the whole path: a camera filming a face, recorded by a station, exported with and without --blur-faces ------

SIZE = 320  # the photo scaled to 320x320: the face is about 60 px wide
STATION = """
schema: excap.station
schema_version: 1
station: {id: face-test, out_dir: episodes}
machine: {profile: excavator_20t, pattern: iso, id: exc-face, simulated: true}
session: {operator: operator-face-1, task: dig-and-load, certification_policy: mark_uncertified}
joysticks:
  - {name: operator, type: sim, axes: [lx, ly, rx, ry, tl, tr], buttons: [enable, horn, marker]}
inputs:
  axes: {left_x: operator.lx, left_y: operator.ly, right_x: operator.rx, right_y: operator.ry,
         travel_left: operator.tl, travel_right: operator.tr}
  buttons: {enable: operator.enable}
can:
  - {name: can0, interface: virtual, channel: excap-face-test-CHANNEL}
cameras:
  - {name: cab, source: VIDEO, loop: true, realtime: true}
command: {bus: can0}
"""
REGISTRY = "operators:\n  - {operator_id: operator-face-1, display_name: Face Person, consent_to_share: true}\n"


def astronaut(size: int = SIZE) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR), (size, size),
                      interpolation=cv2.INTER_AREA)


def centred_in(box: tuple[int, int, int, int], face: tuple[int, int, int, int]) -> bool:
    """The detection `box` is the face: its centre lies inside the face's box."""
    x, y = box[0] + box[2] / 2, box[1] + box[3] / 2
    return face[0] <= x <= face[0] + face[2] and face[1] <= y <= face[1] + face[3]


def sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """High-frequency energy in a box: the variance of the grey image's Laplacian."""
    x, y, w, h = box
    gray = cv2.cvtColor(np.ascontiguousarray(image[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@pytest.fixture(scope="module")
def face_episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one episode recorded by a station whose camera films the astronaut photo (a video file)."""
    from excap.station.config import load_station_config
    from excap.station.session import run_station_session

    folder = tmp_path_factory.mktemp("face_station")
    video = folder / "astronaut.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (SIZE, SIZE))
    for _ in range(10):
        writer.write(astronaut())
    writer.release()
    config = folder / "station.yaml"
    config.write_text(STATION.replace("VIDEO", str(video)).replace("CHANNEL", uuid.uuid4().hex))
    episodes = folder / "episodes"
    (episodes / ".excap").mkdir(parents=True)
    (episodes / ".excap" / "operators.yaml").write_text(REGISTRY)
    path = run_station_session(load_station_config(config), duration_s=2.0)
    assert validate_episode(path) == []
    with h5py.File(path, "r") as f:
        assert len(f["cameras/cab/frames"]) >= 10
        first = cv2.imdecode(f["cameras/cab/frames"][0], cv2.IMREAD_COLOR)
    assert FaceBlurrer().detect(first), "the recorded camera frames show the face"
    return episodes


def export(episodes: Path, out: Path, *options: str) -> tuple[str, list[np.ndarray]]:
    result = subprocess.run(excap_command("export", str(episodes), "--format", "lerobot", "--out", str(out),
                                          "--fps", "5", "--partner", "oem-face", "--no-progress", *options),
                            capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    (video,) = sorted((out / "videos" / "observation.images.cab").rglob("*.mp4"))
    return result.stdout, decode_rgb(video)


def test_export_blurs_the_face_filmed_by_a_station_camera(face_episodes: Path, tmp_path: Path) -> None:
    plain_report, plain = export(face_episodes, tmp_path / "plain")
    blurred_report, blurred = export(face_episodes, tmp_path / "blurred", "--blur-faces")
    assert len(plain) == len(blurred) >= 5
    frames = len(blurred)
    assert "faces blurred" not in plain_report
    assert re.search(rf"\b{frames} frames\b.*; ([1-9][0-9]*) faces blurred", blurred_report), blurred_report

    original = cv2.cvtColor(astronaut(), cv2.COLOR_BGR2RGB)
    face = max(FaceBlurrer().detect(cv2.cvtColor(original, cv2.COLOR_RGB2BGR)), key=lambda box: box[2])
    _, y, _, h = face
    away = (0, SIZE * 3 // 4, SIZE // 4, SIZE // 4)  # bottom left: the suit, far outside the blurred margin
    assert away[1] > y + h * 1.25 + 10
    face_ratio = max(sharpness(b, face) / sharpness(p, face) for p, b in zip(plain, blurred, strict=True))
    away_ratios = [sharpness(b, away) / sharpness(p, away) for p, b in zip(plain, blurred, strict=True)]
    report.record("face blurring", "face sharpness, blurred / plain export (worst frame)", round(face_ratio, 4))
    report.record("face blurring", "face-free sharpness, blurred / plain export (range)",
                  [round(min(away_ratios), 3), round(max(away_ratios), 3)])
    for plain_frame, blurred_frame in zip(plain, blurred, strict=True):
        assert plain_frame.shape == blurred_frame.shape == (SIZE, SIZE, 3)
        # without --blur-faces the face keeps its detail (the video encoder's loss aside) ...
        assert sharpness(plain_frame, face) > 0.4 * sharpness(original, face)
        # ... with it, its high-frequency energy is gone, while a face-free region is as before
        assert sharpness(blurred_frame, face) < 0.1 * sharpness(plain_frame, face)
        assert 0.8 < sharpness(blurred_frame, away) / sharpness(plain_frame, away) < 1.25
        # and the detector finds the face only in the unblurred export
        assert any(centred_in(box, face) for box in FaceBlurrer().detect(cv2.cvtColor(plain_frame, cv2.COLOR_RGB2BGR)))
        assert not any(centred_in(box, face)
                       for box in FaceBlurrer().detect(cv2.cvtColor(blurred_frame, cv2.COLOR_RGB2BGR)))
