"""The shared-memory camera: frames written by a producer into a ring arrive in order; a reader that falls behind
the ring finds the frames it missed overwritten and counts them as dropped."""

import threading
import uuid

import numpy as np
import pytest

from excap.core.errors import DriverError
from excap.drivers.base import Health
from excap.drivers.camera.config import CameraConfig
from excap.drivers.camera.shm_camera import SharedMemoryCamera
from excap.drivers.camera.shm_ring import RingFormat, RingReader, RingWriter
from tests.support.waiting import wait_for

FORMAT = RingFormat(width=32, height=24, fps=30.0, slots=4)
PERIOD_NS = round(1e9 / FORMAT.fps)


@pytest.fixture
def ring():
    writer = RingWriter(f"excap-test-{uuid.uuid4().hex[:10]}", FORMAT)
    yield writer
    writer.close()


def picture(seq: int) -> np.ndarray:
    return np.full((FORMAT.height, FORMAT.width, 3), seq % 256, np.uint8)


def test_frames_arrive_in_order_with_their_sequence_time(ring):
    got = []
    camera = SharedMemoryCamera(CameraConfig(name="cam", source=f"shm:{ring.name}"),
                                lambda t_ns, t_device_ns, image: got.append((t_device_ns, image)))
    with camera:
        assert camera.info is not None and (camera.info.width, camera.info.height) == (32, 24)
        for seq in range(1, 4):
            ring.write(picture(seq), seq)
            wait_for(lambda n=seq: len(got) == n, message=f"frame {seq}")
        assert camera.health is Health.OK
    assert [t for t, _ in got] == [1 * PERIOD_NS, 2 * PERIOD_NS, 3 * PERIOD_NS]
    assert [int(image[0, 0, 0]) for _, image in got] == [1, 2, 3]
    assert camera.counters.samples == 3 and camera.counters.dropped == 0


def test_a_slow_reader_counts_the_frames_overwritten_before_it_read_them(ring):
    inside, release = threading.Event(), threading.Event()
    got = []

    def slow(t_ns, t_device_ns, image):
        got.append(t_device_ns // PERIOD_NS)
        inside.set()
        release.wait(10)

    camera = SharedMemoryCamera(CameraConfig(name="cam", source=f"shm:{ring.name}"), slow)
    with camera:
        ring.write(picture(1), 1)
        assert inside.wait(10)
        for seq in range(2, 12):  # ten frames while the reader is busy: the 4-slot ring keeps the last four
            ring.write(picture(seq), seq)
        release.set()
        wait_for(lambda: len(got) == 5, message="the frames still in the ring")
        wait_for(lambda: camera.counters.dropped == 6, message="six drops counted")
    assert got == [1, 8, 9, 10, 11]


def test_a_missing_ring_is_a_lost_source_until_it_appears():
    name = f"excap-test-{uuid.uuid4().hex[:10]}"
    events = []
    got = []
    camera = SharedMemoryCamera(CameraConfig(name="cam", source=f"shm:{name}", reconnect_interval_s=0.05),
                                lambda *frame: got.append(frame), on_event=lambda kind, detail: events.append(kind))
    with pytest.raises(DriverError, match="cannot open shared-memory ring"):
        camera.open()
    camera.open(wait_for_source=True)
    try:
        assert camera.health is Health.DISCONNECTED and events == ["camera_lost"]
        writer = RingWriter(name, FORMAT)
        try:
            wait_for(lambda: "reconnect" in events, message="reconnect")
            writer.write(picture(1), 1)
            wait_for(lambda: got, message="a frame after reconnecting")
        finally:
            writer.close()
    finally:
        camera.close()


def test_a_reader_refuses_what_is_not_a_ring(tmp_path):
    with pytest.raises(DriverError, match="no such shared memory"):
        RingReader(f"excap-test-{uuid.uuid4().hex[:10]}")
