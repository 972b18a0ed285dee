"""Face blurring on a real photograph: scikit-image's bundled 'astronaut' (Eileen Collins, public domain)."""

import cv2
import numpy as np
from skimage import data as skimage_data

from capture_node.datasets.faces import FaceBlurrer


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
