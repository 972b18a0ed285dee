"""Blurring people's faces in camera frames.

The detector is OpenCV's frontal-face cascade: the Haar cascade bundled with OpenCV 4
(`cv2.data.haarcascades + 'haarcascade_frontalface_default.xml'`, run by `cv2.CascadeClassifier`) when the
installed OpenCV has it; OpenCV 5 no longer ships cascades, and then OpenCV's LBP frontal-face cascade
(`lbpcascade_frontalface_opencv.xml`, bundled with scikit-image) runs through `skimage.feature.Cascade`.
Detection works on a copy scaled down to at most `detect_max_side` pixels; boxes are blurred at full size.
Over-blurring (a false detection) is harmless for privacy; a missed face is the risk, so the margin is generous.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

HAAR_FILE = "haarcascade_frontalface_default.xml"

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class FaceBlurOptions:
    min_size: int = 20  # pixels in the detection image: smaller faces are not searched for
    detect_max_side: int = 320
    margin: float = 0.25  # the blurred box grows by this fraction of the face size on each side


def _haar_path() -> Path | None:
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None or not hasattr(cv2, "CascadeClassifier"):
        return None
    path = Path(folder) / HAAR_FILE
    return path if path.is_file() else None


class FaceBlurrer:
    """Finds frontal faces in 3-channel uint8 images and blurs them beyond recognition."""

    def __init__(self, options: FaceBlurOptions | None = None) -> None:
        self.options = options or FaceBlurOptions()
        haar = _haar_path()
        if haar is not None:
            self.backend = "opencv-haar"
            self._haar = cv2.CascadeClassifier(str(haar))  # type: ignore[attr-defined]  # not in every build
        else:
            try:
                from skimage.data import lbp_frontal_face_cascade_filename
                from skimage.feature import Cascade
            except ImportError as exc:
                raise RuntimeError("face blurring needs OpenCV with Haar cascades (OpenCV 4) or scikit-image "
                                   "(OpenCV's LBP face cascade)") from exc
            self.backend = "opencv-lbp (scikit-image)"
            self._lbp = Cascade(lbp_frontal_face_cascade_filename())

    def _detect_small(self, gray: np.ndarray) -> list[Box]:
        size = self.options.min_size
        if self.backend == "opencv-haar":
            found = self._haar.detectMultiScale(cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=4,
                                                minSize=(size, size))
            return [(int(x), int(y), int(w), int(h)) for x, y, w, h in found] if len(found) else []
        side = min(gray.shape[:2])
        found = self._lbp.detect_multi_scale(img=gray.astype(np.float64) / 255.0, scale_factor=1.2, step_ratio=1,
                                             min_size=(size, size), max_size=(side, side))
        return [(int(d["c"]), int(d["r"]), int(d["width"]), int(d["height"])) for d in found]

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes (x, y, w, h) in full-size image coordinates."""
        height, width = image.shape[:2]
        scale = min(1.0, self.options.detect_max_side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = image if scale == 1.0 else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return [(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                for x, y, w, h in self._detect_small(gray)]

    def blur(self, image: np.ndarray) -> tuple[np.ndarray, int]:
        """A copy of `image` with every detected face blurred (the image itself when none), and the face count."""
        boxes = self.detect(image)
        if not boxes:
            return image, 0
        out = image.copy()
        height, width = out.shape[:2]
        for x, y, w, h in boxes:
            dx, dy = int(w * self.options.margin), int(h * self.options.margin)
            x0, y0, x1, y1 = max(0, x - dx), max(0, y - dy), min(width, x + w + dx), min(height, y + h + dy)
            if x1 <= x0 or y1 <= y0:
                continue
            region = out[y0:y1, x0:x1]
            # pixelate, then smooth: no facial detail survives
            small = cv2.resize(region, (max(1, (x1 - x0) // 12), max(1, (y1 - y0) // 12)), interpolation=cv2.INTER_AREA)
            coarse = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
            kernel = max(3, (min(x1 - x0, y1 - y0) // 4) | 1)
            out[y0:y1, x0:x1] = cv2.GaussianBlur(coarse, (kernel, kernel), 0)
        return out, len(boxes)
