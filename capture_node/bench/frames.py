"""The frame producer of the capture benchmark: cameras at the protocol level, in another process.

Each stream is a shared-memory ring (`excap.drivers.camera.shm_ring`) written at its frame rate whether or not
anyone reads it. The pictures are pre-rendered textured scenes (smooth shapes, edges and sensor-like noise that
compress in JPEG like a camera picture), cycled as a slow pan (each stream shifted sideways by its own offset),
with a moving overlay drawn on every frame, so rendering costs the producer a copy and a rectangle per frame. The
streams are staggered within a frame period, as unsynchronised cameras are.
"""

import multiprocessing
import os
import resource
import time
from dataclasses import dataclass

import cv2
import numpy as np

from excap.drivers.camera.shm_ring import RingFormat, RingWriter

SCENES = 30


def scene_frames(width: int, height: int, count: int = SCENES, seed: int = 0) -> list[np.ndarray]:
    """`count` textured BGR pictures of one scene panning sideways."""
    rng = np.random.default_rng(seed)
    pan = 6 * count
    coarse = rng.integers(0, 255, (max(2, height // 24), max(2, (width + pan) // 24), 3), dtype=np.uint8)
    base = cv2.resize(coarse, (width + pan, height), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0, 60, height, dtype=np.float32)[:, None, None]
    base = np.clip(base.astype(np.float32) * 0.6 + ramp, 0, 255).astype(np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, width + pan)), int(rng.integers(0, height))
        size = int(rng.integers(8, max(9, height // 5)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            cv2.rectangle(base, (x, y), (x + size, y + size // 2), colour, -1)
        else:
            cv2.circle(base, (x, y), size // 2, colour, 2)
    frames = []
    for index in range(count):
        view = base[:, index * 6: index * 6 + width].copy()
        noise = rng.normal(0, 3.0, view.shape).astype(np.int16)
        frames.append(np.clip(view.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return frames


@dataclass(frozen=True)
class StreamSpec:
    ring: str
    width: int
    height: int
    fps: float = 30.0


def produce(streams: list[StreamSpec], ready: "multiprocessing.synchronize.Event",
            stop: "multiprocessing.synchronize.Event", report: "multiprocessing.connection.Connection") -> None:
    """The producer process: write every stream's frames on time until `stop`; report what it did."""
    writers = [RingWriter(s.ring, RingFormat(s.width, s.height, s.fps)) for s in streams]
    scenes: dict[tuple[int, int], list[np.ndarray]] = {}
    for spec in streams:
        if (spec.width, spec.height) not in scenes:
            scenes[(spec.width, spec.height)] = scene_frames(spec.width, spec.height)
    period = 1.0 / streams[0].fps if streams else 1.0
    offsets = [period * i / max(1, len(streams)) for i in range(len(streams))]
    written = [0] * len(streams)
    skipped = [0] * len(streams)
    ready.set()
    start = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic() - start
            soonest = None
            for i, spec in enumerate(streams):
                due = offsets[i] + (written[i] + skipped[i]) * period
                if due > now:
                    soonest = due if soonest is None else min(soonest, due)
                    continue
                behind = int((now - due) / period)
                skipped[i] += behind  # a camera that could not expose in time skips, never bursts
                frame = written[i] + skipped[i]
                image = writers[i].slot_image()
                picture = scenes[(spec.width, spec.height)]
                shift = (i * 37) % spec.width  # every stream a different view (and different JPEG bytes)
                source = picture[frame % len(picture)]
                image[:, :spec.width - shift] = source[:, shift:]
                image[:, spec.width - shift:] = source[:, :shift]
                x = int((frame * 7) % max(1, spec.width - 80))
                cv2.rectangle(image, (x, spec.height // 3), (x + 80, spec.height // 3 + 60), (40, 200, 240), -1)
                writers[i].publish(time.monotonic_ns())
                written[i] += 1
            if soonest is not None:
                time.sleep(max(0.0, soonest - (time.monotonic() - start)))
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        report.send({"frames_written": sum(written), "producer_late_skips": sum(skipped),
                     "producer_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                     "seconds": round(time.monotonic() - start, 2)})
        for writer in writers:
            writer.close()


class FrameProducer:
    """The producer process of `streams` (`with FrameProducer(...) as producer:`); rings exist once entered."""

    def __init__(self, count: int, width: int, height: int, fps: float = 30.0, tag: str = "") -> None:
        tag = tag or f"{os.getpid()}-{time.monotonic_ns() % 1_000_000}"
        self.streams = [StreamSpec(f"excap-bench-{tag}-{i:02d}", width, height, fps) for i in range(count)]
        context = multiprocessing.get_context("spawn")
        self._ready = context.Event()
        self._stop = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=produce, args=(self.streams, self._ready, self._stop, send),
                                        name="excap-bench-frames", daemon=True)
        self.report: dict[str, float] = {}

    @property
    def rings(self) -> list[str]:
        return [s.ring for s in self.streams]

    def __enter__(self) -> "FrameProducer":
        self._process.start()
        if not self._ready.wait(60):
            self._process.kill()
            raise RuntimeError("the frame producer did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._receive.poll(30):
            self.report = self._receive.recv()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
