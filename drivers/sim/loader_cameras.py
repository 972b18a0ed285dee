"""Renders camera views of the simulated wheel loader with OpenCV, so images carry the machine state.

`front`: a cab-roof camera on the rear frame looking ahead (the lift arms, the bucket and its load, the pile and
the truck in the yard; the bucket swings across the image as the machine articulates). `rear`: a camera on the
counterweight looking back (the yard passing by while reversing). A simple pinhole projection of the yard (ground
grid, stockpile, truck) and the machine's front end, painted far to near; sensor noise from a fixed set of
patterns gives the images realistic JPEG sizes, as in the excavator's renderer (`excap.drivers.sim.cameras`).
"""

import math
from collections.abc import Sequence

import cv2
import numpy as np

from excap.drivers.sim.wheel_loader_geometry import (
    WheelLoaderGeometry,
    WheelLoaderState,
    Yard,
    bucket_edge,
    bucket_pin,
    front_axle,
)

VIEWS = ("front", "rear")

_SKY = (235, 206, 170)
_GROUND = (95, 125, 140)
_GRID = (50, 70, 85)
_PILE = (40, 70, 105)
_PILE_TOP = (55, 90, 125)
_YELLOW = (20, 190, 240)
_STEEL = (70, 70, 70)
_TRUCK = (40, 40, 160)
_TRUCK_SIDE = (30, 30, 120)
_NEAR = 0.3  # m: nothing nearer the camera than this is drawn

Point3 = tuple[float, float, float]


class _Camera:
    """A pinhole camera at a yard position, turned to `yaw` and pitched down by `pitch`."""

    def __init__(self, position: Point3, yaw: float, pitch: float, width: int, height: int) -> None:
        self.position = position
        self.cos_yaw, self.sin_yaw = math.cos(yaw), math.sin(yaw)
        self.cos_pitch, self.sin_pitch = math.cos(pitch), math.sin(pitch)
        self.focal = width * 0.55
        self.width, self.height = width, height

    def to_camera(self, point: Point3) -> Point3:
        """(depth, left, up) in the camera's frame."""
        dx, dy, dz = (point[i] - self.position[i] for i in range(3))
        ahead = dx * self.cos_yaw + dy * self.sin_yaw
        left = -dx * self.sin_yaw + dy * self.cos_yaw
        return ahead * self.cos_pitch - dz * self.sin_pitch, left, ahead * self.sin_pitch + dz * self.cos_pitch

    def pixel(self, camera_point: Point3) -> tuple[int, int]:
        depth, left, up = camera_point
        u = self.width / 2 - self.focal * left / depth
        v = self.height / 2 - self.focal * up / depth
        return int(max(-1e5, min(1e5, u))), int(max(-1e5, min(1e5, v)))

    def horizon(self) -> int:
        return int(self.height / 2 - self.focal * self.sin_pitch / self.cos_pitch)

    def polygon(self, points: Sequence[Point3]) -> np.ndarray | None:
        """The polygon's pixels, clipped at the near plane; None if nothing of it is in front of the camera."""
        camera = [self.to_camera(p) for p in points]
        clipped: list[Point3] = []
        for i, current in enumerate(camera):
            previous = camera[i - 1]
            if (current[0] >= _NEAR) != (previous[0] >= _NEAR):
                share = (_NEAR - previous[0]) / (current[0] - previous[0])
                clipped.append((previous[0] + share * (current[0] - previous[0]),
                                previous[1] + share * (current[1] - previous[1]),
                                previous[2] + share * (current[2] - previous[2])))
            if current[0] >= _NEAR:
                clipped.append(current)
        if len(clipped) < 2:
            return None
        return np.array([self.pixel(p) for p in clipped], dtype=np.int32)

    def segment(self, a: Point3, b: Point3) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """The line's end pixels, clipped at the near plane; None if it is behind the camera."""
        ca, cb = self.to_camera(a), self.to_camera(b)
        if ca[0] < _NEAR and cb[0] < _NEAR:
            return None
        if ca[0] < _NEAR or cb[0] < _NEAR:
            share = (_NEAR - ca[0]) / (cb[0] - ca[0])
            cut: Point3 = (ca[0] + share * (cb[0] - ca[0]), ca[1] + share * (cb[1] - ca[1]),
                           ca[2] + share * (cb[2] - ca[2]))
            ca, cb = (cut, cb) if ca[0] < _NEAR else (ca, cut)
        return self.pixel(ca), self.pixel(cb)

    def depth(self, points: Sequence[Point3]) -> float:
        return sum(self.to_camera(p)[0] for p in points) / len(points)


class LoaderViewRenderer:
    """Draws one view at a fixed size; reuse one renderer per camera (it caches its noise)."""

    def __init__(self, view: str, width: int, height: int, geometry: WheelLoaderGeometry | None = None,
                 yard: Yard | None = None, seed: int = 0) -> None:
        if view not in VIEWS:
            raise ValueError(f"unknown camera view {view!r} (known: {', '.join(VIEWS)})")
        self.view = view
        self.width = width
        self.height = height
        self.geometry = geometry or WheelLoaderGeometry()
        self.yard = yard or Yard()
        rng = np.random.default_rng(seed)
        self._noise = [rng.integers(0, 10, (height, width, 3), dtype=np.uint8) for _ in range(4)]
        self._scenery = self._yard_faces()

    def render(self, state: WheelLoaderState, frame_index: int, label: str) -> np.ndarray:
        camera = self._camera(state)
        frame: np.ndarray = np.empty((self.height, self.width, 3), np.uint8)
        frame[:] = _SKY
        frame[max(0, min(self.height, camera.horizon())):] = _GROUND
        self._draw_grid(frame, camera, state)
        faces = list(self._scenery)
        if self.view == "front":
            faces += self._machine_faces(state)
        for _, points, colour in sorted(((camera.depth(p), p, c) for p, c in faces), key=lambda f: -f[0]):
            pixels = camera.polygon(points)
            if pixels is not None:
                cv2.fillPoly(frame, [pixels], colour, cv2.LINE_AA)
        if self.view == "front":
            self._draw_arms(frame, camera, state)
        else:
            counterweight = np.array([(0, self.height), (self.width, self.height),
                                      (int(self.width * 0.8), int(self.height * 0.88)),
                                      (int(self.width * 0.2), int(self.height * 0.88))], dtype=np.int32)
            cv2.fillPoly(frame, [counterweight], _YELLOW)
        cv2.putText(frame, f"{label} #{frame_index:06d} t={state.t:8.2f}s", (8, 20), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (255, 255, 255), 1, cv2.LINE_AA)
        frame = cv2.add(frame, self._noise[frame_index % 4])
        return cv2.subtract(frame, self._noise[(frame_index + 2) % 4])

    def _camera(self, s: WheelLoaderState) -> _Camera:
        g = self.geometry
        c, sn = math.cos(s.heading), math.sin(s.heading)
        if self.view == "front":  # cab roof, on the rear frame just behind the joint
            back = -0.6
            return _Camera((s.x + back * c, s.y + back * sn, 3.3), s.heading, math.radians(14), self.width,
                           self.height)
        back = -(g.rear_length + 1.6)
        return _Camera((s.x + back * c, s.y + back * sn, 2.4), s.heading + math.pi, math.radians(22), self.width,
                       self.height)

    # -- the yard ------------------------------------------------------------------------------------

    def _yard_faces(self) -> list[tuple[list[Point3], tuple[int, int, int]]]:
        y = self.yard
        x0, half = y.pile_x, y.pile_half_width
        crest = x0 + y.pile_height / y.pile_slope
        back = crest + 3.0
        top = y.pile_height
        faces = [
            ([(x0, -half, 0.0), (x0, half, 0.0), (crest, half - 1.0, top), (crest, -half + 1.0, top)], _PILE),
            ([(crest, -half + 1.0, top), (crest, half - 1.0, top), (back, half - 1.0, top), (back, -half + 1.0, top)],
             _PILE_TOP),
            ([(x0, half, 0.0), (back + 2.0, half, 0.0), (back, half - 1.0, top), (crest, half - 1.0, top)], _PILE),
            ([(x0, -half, 0.0), (back + 2.0, -half, 0.0), (back, -half + 1.0, top), (crest, -half + 1.0, top)], _PILE),
        ]
        corners = y.truck_corners()
        low, high = 1.2, y.truck_side_height
        for i in range(4):
            a, b = corners[i], corners[(i + 1) % 4]
            faces.append(([(a[0], a[1], low), (b[0], b[1], low), (b[0], b[1], high), (a[0], a[1], high)],
                          _TRUCK_SIDE if i % 2 else _TRUCK))
        c, s = math.cos(y.truck_heading), math.sin(y.truck_heading)
        nose = y.truck_length / 2
        cab = [(y.truck_centre[0] + (nose + a) * c - b * s, y.truck_centre[1] + (nose + a) * s + b * c)
               for a, b in ((0.3, -1.2), (2.3, -1.2), (2.3, 1.2), (0.3, 1.2))]
        faces.append(([(px, py, 3.4) for px, py in cab], _STEEL))
        faces.append(([(px, py, 1.0) for px, py in cab[:2]] + [(px, py, 3.4) for px, py in cab[1::-1]], _STEEL))
        return faces

    def _draw_grid(self, frame: np.ndarray, camera: _Camera, s: WheelLoaderState) -> None:
        """Ground lines every 4 m around the machine: they move through the image as it drives and turns."""
        step, reach = 4.0, 40.0
        cx, cy = round(s.x / step) * step, round(s.y / step) * step
        for offset in np.arange(-reach, reach + step, step):
            for a, b in (((cx + offset, cy - reach, 0.0), (cx + offset, cy + reach, 0.0)),
                         ((cx - reach, cy + offset, 0.0), (cx + reach, cy + offset, 0.0))):
                line = camera.segment(a, b)
                if line is not None:
                    cv2.line(frame, line[0], line[1], _GRID, 1, cv2.LINE_AA)

    # -- the machine's front end -----------------------------------------------------------------------

    def _front_point(self, s: WheelLoaderState, ahead: float, left: float, up: float) -> Point3:
        fx, fy = front_axle(s, self.geometry)
        heading = s.front_heading
        c, sn = math.cos(heading), math.sin(heading)
        return fx + ahead * c - left * sn, fy + ahead * sn + left * c, up

    def _machine_faces(self, s: WheelLoaderState) -> list[tuple[list[Point3], tuple[int, int, int]]]:
        g = self.geometry
        pin_ahead, pin_z = bucket_pin(s, g)
        edge_ahead, edge_z = bucket_edge(s, g)
        back_angle = s.bucket_angle + 1.35  # the bucket's back plate rises from the pin
        top_ahead, top_z = pin_ahead + 1.1 * math.cos(back_angle), pin_z + 1.1 * math.sin(back_angle)
        half = 1.45
        p = self._front_point
        faces = [
            ([p(s, pin_ahead, -half, pin_z), p(s, pin_ahead, half, pin_z), p(s, edge_ahead, half, edge_z),
              p(s, edge_ahead, -half, edge_z)], _STEEL),
            ([p(s, pin_ahead, -half, pin_z), p(s, pin_ahead, half, pin_z), p(s, top_ahead, half, top_z),
              p(s, top_ahead, -half, top_z)], _STEEL),
        ]
        if s.payload > 0.05 * g.rated_payload:
            share = min(1.2, s.payload / g.rated_payload)
            heap_z = max(edge_z, top_z) + 0.3 * share
            faces.append(([p(s, edge_ahead, -half + 0.1, edge_z), p(s, edge_ahead, half - 0.1, edge_z),
                           p(s, (edge_ahead + top_ahead) / 2, half - 0.3, heap_z),
                           p(s, (edge_ahead + top_ahead) / 2, -half + 0.3, heap_z)], _PILE))
        return faces

    def _draw_arms(self, frame: np.ndarray, camera: _Camera, s: WheelLoaderState) -> None:
        g = self.geometry
        pin_ahead, pin_z = bucket_pin(s, g)
        pivot_ahead, pivot_z = g.lift_pivot
        for side in (-0.95, 0.95):
            line = camera.segment(self._front_point(s, pivot_ahead, side, pivot_z),
                                  self._front_point(s, pin_ahead, side, pin_z))
            if line is not None:
                cv2.line(frame, line[0], line[1], _YELLOW, max(3, self.width // 40), cv2.LINE_AA)
