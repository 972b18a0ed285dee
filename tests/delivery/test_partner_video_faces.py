"""Faces in partner review videos are blurred: an episode whose cameras film a face, rendered for a partner, shows no
face the detector finds, while the same episode rendered plainly does."""

import shutil
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest

from excap.core.digests import file_sha256
from excap.datasets.faces import FaceBlurrer
from excap.datasets.h264 import H264Writer
from excap.delivery.partner_episodes import partner_episode
from excap.delivery.partner_videos import partner_review_video
from excap.review.render import render_review_video

pytestmark = pytest.mark.slow


def face_picture() -> np.ndarray:
    """A photograph of a face (scikit-image's sample 'astronaut'), 320x240 BGR."""
    from skimage.data import astronaut

    return cv2.resize(cv2.cvtColor(astronaut()[0:300, 100:500], cv2.COLOR_RGB2BGR), (320, 240))


def first_frame(video: Path) -> np.ndarray:
    with av.open(str(video)) as container:
        return next(container.decode(video=0)).to_ndarray(format="bgr24")


def test_faces_in_a_partner_video_are_blurred(sim_episode: Path, tmp_path: Path) -> None:
    root = tmp_path / "site"
    root.mkdir()
    shutil.copyfile(sim_episode, root / "a.h5")
    jpeg = cv2.imencode(".jpg", face_picture())[1].tobytes()
    with h5py.File(root / "a.h5", "r+") as handle:
        for camera in handle["cameras"].values():
            frames = camera["frames"]
            for index in range(len(frames)):
                frames[index] = np.frombuffer(jpeg, np.uint8)
    blurrer = FaceBlurrer()
    assert blurrer.detect(face_picture())  # the picture holds a face the detector finds
    copy = partner_episode(root, "acme", "a.h5")
    video = partner_review_video(root, "acme", copy, file_sha256(copy))
    plain = tmp_path / "plain.mp4"
    render_review_video(copy, plain, fps=10.0, progress=False, writer=H264Writer)
    assert len(blurrer.detect(first_frame(plain))) >= 2  # one face per camera view
    assert blurrer.detect(first_frame(video)) == []
