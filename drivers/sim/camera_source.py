"""Simulated cameras: render the machine at a fixed frame rate, one thread per camera, with the renderer of the
machine's kind (`excap.drivers.sim.machines`).

An error while rendering is the camera's fault (`guard`): the thread ends, health FAILED.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

from excap.core.clock import now_ns
from excap.core.periodic import Late, Periodic
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.limits import CAMERA_FPS
from excap.drivers.sim import truth
from excap.drivers.sim.machines import sim_machine

FrameCallback = Callable[[int, int, np.ndarray], None]
"""(t_ns, t_device_ns, BGR image) -> None"""


class SimulatedCamera:
    def __init__(self, name: str, view: str, state: Callable[[], Any], on_frame: FrameCallback,
                 width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0,
                 kind: str = "excavator") -> None:
        self.name = name
        self.fps = fps
        self.width = width
        self.height = height
        self._renderer = sim_machine(kind).renderer(view, width, height, seed=seed)
        self._state = state
        self._on_frame = on_frame
        self._worker: Periodic | None = None
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
        # A real sensor skips exposures it fell behind on rather than bursting: missed frames are dropped.
        self._worker = Periodic(f"sim-camera-{self.name}", self.period, self._frame, late=Late.SKIP, guard=self.guard,
                                on_skip=self._skipped)
        self._health = Health.OK
        self._worker.start()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()
        self._health = Health.STOPPED

    def _skipped(self, missed: int) -> None:
        self.counters.dropped += missed

    def _frame(self, index: int) -> None:
        t_ns = now_ns()  # the exposure: the machine's state is read now
        t_device_ns = int(index * self.period * 1e9)
        stamps = truth.active()
        if stamps is not None:
            stamps.add(truth.CAMERA, self.name, t_ns, t_device_ns)
        image = self._renderer.render(self._state(), index, self.name)
        self._on_frame(t_ns, t_device_ns, image)
        self.counters.count_sample(t_ns)
