"""Renders camera views of the simulated excavator with OpenCV, so images carry the machine state.

`side`: a site camera looking across the boom plane (boom, arm, bucket and its load visible).
`top`: a mast camera above the machine (swing, tracks, dig area and truck visible).
Sensor noise from a fixed set of patterns gives the images realistic JPEG sizes.
"""

import math

import cv2
import numpy as np

from excap.drivers.sim.excavator import ExcavatorGeometry, ExcavatorState, joint_points

VIEWS = ("side", "top")

_SKY = (235, 206, 170)
_SOIL = (60, 95, 140)
_DARK_SOIL = (40, 70, 105)
_YELLOW = (20, 190, 240)
_STEEL = (70, 70, 70)
_CAB_GLASS = (120, 90, 60)


class ViewRenderer:
    """Draws one view at a fixed size; reuse one renderer per camera (it caches its noise)."""

    def __init__(self, view: str, width: int, height: int, geometry: ExcavatorGeometry | None = None,
                 seed: int = 0) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown camera view {view!r} (known: {', '.join(VIEWS)})")
        self.view = view
        self.width = width
        self.height = height
        self.geometry = geometry or ExcavatorGeometry()
        rng = np.random.default_rng(seed)
        self._noise = [rng.integers(0, 10, (height, width, 3), dtype=np.uint8) for _ in range(4)]
        self._background = self._draw_background()

    def render(self, state: ExcavatorState, frame_index: int, label: str) -> np.ndarray:
        frame = self._background.copy()
        if self.view == "side":
            self._draw_side(frame, state)
        else:
            self._draw_top(frame, state)
        cv2.putText(frame, f"{label} #{frame_index:06d} t={state.t:8.2f}s", (8, 20), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (255, 255, 255), 1, cv2.LINE_AA)
        frame = cv2.add(frame, self._noise[frame_index % 4])
        return cv2.subtract(frame, self._noise[(frame_index + 2) % 4])

    # -- side view ------------------------------------------------------------------------

    def _side_px(self, x: float, z: float) -> tuple[int, int]:
        scale = self.width / 18.0
        return int(self.width * 0.3 + x * scale), int(self.height * 0.72 - z * scale)

    def _draw_background(self) -> np.ndarray:
        frame = np.empty((self.height, self.width, 3), np.uint8)
        if self.view == "side":
            frame[:] = _SKY
            ground = self._side_px(0, 0)[1]
            frame[ground:] = _SOIL
            pile = np.array([self._side_px(x, z) for x, z in ((9.5, 0), (11, 1.4), (13, 1.8), (15, 0))])
            cv2.fillPoly(frame, [pile], _DARK_SOIL)
        else:
            frame[:] = (90, 120, 110)
            centre = self._top_px(0, 0)
            cv2.circle(frame, self._top_px(7.5, 0), int(self._top_scale() * 2.5), _DARK_SOIL, -1)
            truck = [self._top_px(x, y) for x, y in ((-2, 6.0), (2.5, 6.0), (2.5, 8.6), (-2, 8.6))]
            cv2.fillPoly(frame, [np.array(truck)], (40, 40, 160))
            cv2.circle(frame, centre, 3, (255, 255, 255), -1)
        return frame

    def _draw_side(self, frame: np.ndarray, s: ExcavatorState) -> None:
        g = self.geometry
        c = math.cos(s.swing)
        cv2.rectangle(frame, self._side_px(-2.3, 1.0), self._side_px(2.3, 0.0), _STEEL, -1)
        for x in np.linspace(-2.0, 2.0, 9):
            cv2.circle(frame, self._side_px(x, 0.45), 6, (40, 40, 40), -1)
        body = np.array([self._side_px(x * c, z) for x, z in ((-2.6, 1.1), (1.6, 1.1), (1.6, 2.5), (-2.6, 2.5))])
        cv2.fillPoly(frame, [body], _YELLOW)
        cab = np.array([self._side_px(x * c, z) for x, z in ((-0.2, 2.5), (1.5, 2.5), (1.5, 3.6), (-0.2, 3.6))])
        cv2.fillPoly(frame, [cab], _CAB_GLASS)
        points = joint_points(s, g)
        px = [self._side_px(x * c, z) for x, z in points]
        cv2.line(frame, px[0], px[1], _YELLOW, 14, cv2.LINE_AA)
        cv2.line(frame, px[1], px[2], _YELLOW, 10, cv2.LINE_AA)
        back_angle = s.bucket_absolute + 1.25
        back = (points[2][0] + 0.9 * math.cos(back_angle), points[2][1] + 0.9 * math.sin(back_angle))
        bucket = np.array([px[2], px[3], self._side_px(back[0] * c, back[1])])
        cv2.fillPoly(frame, [bucket], _STEEL)
        if s.bucket_fill > 0.05:
            heap = np.array([px[3], self._side_px(back[0] * c, back[1] + 0.4 * s.bucket_fill), px[2]])
            cv2.fillPoly(frame, [heap], _DARK_SOIL)
        for point in px[:3]:
            cv2.circle(frame, point, 5, (30, 30, 30), -1)

    # -- top view -------------------------------------------------------------------------

    def _top_scale(self) -> float:
        return min(self.width, self.height) / 24.0

    def _top_px(self, x: float, y: float) -> tuple[int, int]:
        scale = self._top_scale()
        return int(self.width / 2 + x * scale), int(self.height / 2 - y * scale)

    def _rotated(self, corners: list[tuple[float, float]], angle: float) -> np.ndarray:
        c, s = math.cos(angle), math.sin(angle)
        return np.array([self._top_px(x * c - y * s, x * s + y * c) for x, y in corners])

    def _draw_top(self, frame: np.ndarray, s: ExcavatorState) -> None:
        g = self.geometry
        for side in (-1, 1):
            track = [(-2.3, side * 1.2 - 0.35), (2.3, side * 1.2 - 0.35), (2.3, side * 1.2 + 0.35),
                     (-2.3, side * 1.2 + 0.35)]
            cv2.fillPoly(frame, [self._rotated(track, s.heading)], _STEEL)
        upper = s.heading + s.swing
        cv2.fillPoly(frame, [self._rotated([(-2.6, -1.4), (1.6, -1.4), (1.6, 1.4), (-2.6, 1.4)], upper)], _YELLOW)
        cv2.fillPoly(frame, [self._rotated([(-0.2, 0.3), (1.5, 0.3), (1.5, 1.3), (-0.2, 1.3)], upper)], _CAB_GLASS)
        reach = joint_points(s, g)
        c, sn = math.cos(upper), math.sin(upper)
        px = [self._top_px(x * c, x * sn) for x, _ in reach]
        cv2.line(frame, px[0], px[1], _YELLOW, 12, cv2.LINE_AA)
        cv2.line(frame, px[1], px[2], _YELLOW, 8, cv2.LINE_AA)
        cv2.line(frame, px[2], px[3], _STEEL, 10, cv2.LINE_AA)
        if s.bucket_fill > 0.05:
            cv2.circle(frame, px[3], int(4 + 6 * s.bucket_fill), _DARK_SOIL, -1)


def view_for_camera(index: int) -> str:
    return VIEWS[index % len(VIEWS)]


def camera_name(index: int) -> str:
    view = view_for_camera(index)
    return view if index < len(VIEWS) else f"{view}{index // len(VIEWS) + 1}"
