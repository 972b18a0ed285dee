"""Simulated cameras: render the machine at a fixed frame rate, one thread per camera.

An error while rendering is the camera's fault (`guard`): the thread ends, health FAILED.
"""

import threading
import time
from collections.abc import Callable

import numpy as np

from excap.core.clock import now_ns
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.limits import CAMERA_FPS
from excap.drivers.sim.cameras import ViewRenderer
from excap.drivers.sim.excavator import ExcavatorState

FrameCallback = Callable[[int, int, np.ndarray], None]
"""(t_ns, t_device_ns, BGR image) -> None"""


class SimulatedCamera:
    def __init__(self, name: str, view: str, state: Callable[[], ExcavatorState], on_frame: FrameCallback,
                 width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0) -> None:
        self.name = name
        self.fps = fps
        self.width = width
        self.height = height
        self._renderer = ViewRenderer(view, width, height, seed=seed)
        self._state = state
        self._on_frame = on_frame
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters = DriverCounters()
        self.guard = ThreadGuard(f"camera/{name}")
        self._health = Health.STOPPED
        fps = CAMERA_FPS.check(fps, f"camera {name}: fps")
        self.period = 1.0 / fps

    @property
    def health(self) -> Health:
        if self.guard.failed and self._health is not Health.STOPPED:
            return Health.FAILED
        return self._health

    def start(self) -> None:
        self._thread = self.guard.thread(self._run, f"sim-camera-{self.name}")
        self._health = Health.OK
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._health = Health.STOPPED

    def _run(self) -> None:
        period = self.period
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            due = start + index * period
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            if delay < -period:  # fell behind: a real sensor skips exposures rather than bursting
                skipped = int(-delay / period)
                self.counters.dropped += skipped
                index += skipped
            t_ns = now_ns()
            image = self._renderer.render(self._state(), index, self.name)
            self._on_frame(t_ns, int(index * period * 1e9), image)
            self.counters.count_sample(t_ns)
            index += 1
