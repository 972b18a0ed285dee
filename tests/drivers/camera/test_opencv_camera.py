"""OpenCvCamera against real video files written here with cv2.VideoWriter.

Each frame carries its index as a white bar in one of SLOTS columns, so the tests can check order
and that no frame came back mangled.
"""

import json
import os
import threading
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import Health
from excap.drivers.camera.opencv_camera import CameraConfig, OpenCvCamera, SourceKind
from excap.episode.metadata import EpisodeMetadata
from excap.episode.streams import camera_spec
from excap.record.jpeg import JpegEncoder
from excap.record.recorder import Recorder, RecorderConfig
from tests.support.waiting import wait_for

SLOT = 8  # JPEG blocks are 8x8: bar edges on block edges survive compression cleanly
SLOTS = 40
WIDTH, HEIGHT = SLOT * SLOTS, 64


def frame_for(index: int) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    x = (index % SLOTS) * SLOT
    image[:, x:x + SLOT] = 255
    return image


def index_of(image: np.ndarray) -> int:
    """The index drawn into a frame, or -1 if the frame is not a clean bar image of the right size."""
    if image.shape != (HEIGHT, WIDTH, 3):
        return -1
    slots = image.mean(axis=(0, 2)).reshape(SLOTS, SLOT).mean(axis=1)
    order = np.argsort(slots)
    if slots[order[-1]] < 200 or slots[order[-2]] > 50:
        return -1
    return int(order[-1])


def write_video(path: Path, indices: range, fps: float) -> Path:
    """Write an MJPG AVI elsewhere, then move it into place, so a watcher never sees half a file."""
    part = path.with_name(f".{path.stem}.part{path.suffix}")
    writer = cv2.VideoWriter(str(part), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened(), "MJPG/AVI writing unavailable"
    for index in indices:
        writer.write(frame_for(index))
    writer.release()
    os.replace(part, path)
    return path


class Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[int, int, int]] = []
        self.events: list[tuple[str, dict]] = []

    def on_frame(self, t_ns: int, t_device_ns: int, image: np.ndarray) -> None:
        self.frames.append((t_ns, t_device_ns, index_of(image)))

    def on_event(self, kind: str, detail: dict) -> None:
        self.events.append((kind, detail))

    @property
    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    @property
    def indices(self) -> list[int]:
        return [index for _, _, index in self.frames]


def camera(sink: Sink, source: Path | str | int, **options) -> OpenCvCamera:
    options.setdefault("reconnect_interval_s", 0.05)
    config = CameraConfig("side", source if isinstance(source, int) else str(source), **options)
    return OpenCvCamera(config, sink.on_frame, sink.on_event)


def assert_device_times(frames: list[tuple[int, int, int]], fps: float, count: int) -> None:
    """Each frame's device time is its position in the (looped) file, and its picture matches it."""
    for _, t_device_ns, index in frames:
        position = round(t_device_ns * fps / 1e9)
        assert abs(t_device_ns - position * 1e9 / fps) < 1e6
        assert index == position % count


def test_config_classifies_sources():
    assert CameraConfig("a", 0).kind is SourceKind.DEVICE
    assert CameraConfig("a", "2").source == 2
    assert CameraConfig("a", "/dev/video2").kind is SourceKind.DEVICE
    assert CameraConfig("a", "rtsp://10.0.0.5:554/main").kind is SourceKind.STREAM
    assert CameraConfig("a", "http://cam/mjpg").api == cv2.CAP_FFMPEG
    assert CameraConfig("a", "clip.avi").kind is SourceKind.FILE
    with pytest.raises(ConfigError, match="fourcc"):
        CameraConfig("a", 0, fourcc="MJPEG")


def test_all_frames_of_a_file_arrive_in_order_then_the_source_is_lost(tmp_path):
    fps, count = 25.0, 30
    video = write_video(tmp_path / "clip.avi", range(count), fps)
    sink = Sink()
    with camera(sink, video, realtime=False) as cam:
        assert cam.info is not None
        assert (cam.info.width, cam.info.height, cam.info.fps) == (WIDTH, HEIGHT, fps)
        wait_for(lambda: cam.health is Health.DISCONNECTED, message="end of file")
        assert sink.indices == list(range(count))
        assert np.all(np.diff([t for t, _, _ in sink.frames]) > 0)
        assert [d for _, d, _ in sink.frames] == pytest.approx([i / fps * 1e9 for i in range(count)], abs=1e6)
        assert cam.counters.samples == count and cam.counters.dropped == 0 and cam.counters.bad_frames == 0
        assert sink.kinds == ["camera_lost"]
        assert sink.events[0][1] == {"camera": "side", "source": str(video), "reason": "end of file"}
    assert cam.health is Health.STOPPED


def test_realtime_file_is_delivered_at_its_frame_rate(tmp_path):
    fps, count = 20.0, 20
    video = write_video(tmp_path / "clip.avi", range(count), fps)
    sink = Sink()
    with camera(sink, video, realtime=True) as cam:
        wait_for(lambda: cam.health is Health.DISCONNECTED, message="end of file")
    period_ns = 1e9 / fps
    indices = sink.indices
    assert indices == sorted(set(indices)) and -1 not in indices
    assert len(indices) + cam.counters.dropped == count
    assert_device_times(sink.frames, fps, count)
    (t_first, _, i_first), (t_last, _, i_last) = sink.frames[0], sink.frames[-1]
    # never early (less a margin for the first grab), and not far behind either
    assert t_last - t_first >= (i_last - i_first) * period_ns - 0.1e9
    assert t_last - t_first <= (i_last - i_first) * period_ns + 2e9
    intervals = np.diff([t for t, _, _ in sink.frames]) / np.diff(indices)
    assert 0.5 * period_ns < np.median(intervals) < 1.5 * period_ns


def test_looping_file_replays_with_continuous_device_time(tmp_path):
    fps, count = 25.0, 10
    video = write_video(tmp_path / "clip.avi", range(count), fps)
    sink = Sink()
    with camera(sink, video, loop=True, realtime=False) as cam:
        wait_for(lambda: len(sink.frames) >= 3 * count, message="three passes")
        assert cam.health is Health.OK
    frames = sink.frames[:3 * count]
    assert [index for _, _, index in frames] == [i % count for i in range(3 * count)]
    assert [d for _, d, _ in frames] == pytest.approx([i / fps * 1e9 for i in range(3 * count)], abs=1e6)
    assert sink.events == [] and cam.counters.dropped == 0


@pytest.mark.parametrize("content", [None, b"not a video at all"])
def test_source_that_cannot_be_opened_raises(tmp_path, content):
    path = tmp_path / "missing.avi"
    if content is not None:
        path.write_bytes(content)
    sink = Sink()
    cam = camera(sink, path)
    with pytest.raises(DriverError) as error:
        cam.open()
    message = str(error.value)
    assert str(path) in message and "side" in message and "\n" not in message
    assert cam.health is Health.STOPPED and sink.events == []
    cam.close()


def test_file_that_appears_later_is_picked_up(tmp_path):
    fps, count = 25.0, 12
    path = tmp_path / "later.avi"
    sink = Sink()
    cam = camera(sink, path, realtime=False)
    try:
        cam.open(wait_for_source=True)
        assert cam.health is Health.DISCONNECTED
        assert sink.events == [("camera_lost", {"camera": "side", "source": str(path), "reason": "cannot open"})]
        wait_for(lambda: cam.reconnect_attempts >= 2, message="retries")
        write_video(path, range(count), fps)
        wait_for(lambda: sink.kinds == ["camera_lost", "reconnect", "camera_lost"], message="reconnect, then end")
        reconnect = sink.events[1][1]
        assert reconnect["attempts"] >= 2 and reconnect["down_s"] > 0
        assert (reconnect["width"], reconnect["height"], reconnect["fps"]) == (WIDTH, HEIGHT, fps)
        assert cam.counters.reconnects == 1
        assert sink.indices == list(range(count))
        assert cam.health is Health.DISCONNECTED
    finally:
        cam.close()


def test_ended_file_is_reopened_only_when_replaced(tmp_path):
    fps = 25.0
    path = write_video(tmp_path / "clip.avi", range(10), fps)
    sink = Sink()
    with camera(sink, path, realtime=False) as cam:
        wait_for(lambda: sink.kinds == ["camera_lost"], message="end of first file")
        wait_for(lambda: cam.reconnect_attempts >= 3, message="retries")
        assert sink.kinds == ["camera_lost"] and len(sink.frames) == 10  # the same file is not replayed
        write_video(path, range(20, 32), fps)
        wait_for(lambda: sink.kinds == ["camera_lost", "reconnect", "camera_lost"], message="second file played")
        assert cam.counters.reconnects == 1
    assert sink.indices == list(range(10)) + list(range(20, 32))
    second = [d for _, d, _ in sink.frames[10:]]
    assert second == pytest.approx([i / fps * 1e9 for i in range(12)], abs=1e6)


def test_stalled_delivery_reads_stale_and_a_paced_file_skips_what_it_missed(tmp_path):
    fps, count = 50.0, 10
    video = write_video(tmp_path / "clip.avi", range(count), fps)
    sink = Sink()
    gate = threading.Event()

    def on_frame(t_ns: int, t_device_ns: int, image: np.ndarray) -> None:
        sink.on_frame(t_ns, t_device_ns, image)
        if len(sink.frames) == 3:
            gate.wait(30)

    cam = OpenCvCamera(CameraConfig("side", str(video), loop=True, stale_after_s=0.2), on_frame, sink.on_event)
    try:
        cam.open()
        wait_for(lambda: cam.health is Health.STALE, message="stale")
        gate.set()
        wait_for(lambda: cam.health is Health.OK and len(sink.frames) > 6, message="frames again")
    finally:
        gate.set()
        cam.close()
    assert cam.counters.dropped > 0
    assert -1 not in sink.indices
    assert np.all(np.diff([d for _, d, _ in sink.frames]) > 0)
    assert_device_times(sink.frames, fps, count)
    assert sink.events == []


def test_a_failing_frame_callback_does_not_stop_the_camera(tmp_path):
    video = write_video(tmp_path / "clip.avi", range(8), 25.0)
    sink = Sink()

    def on_frame(t_ns: int, t_device_ns: int, image: np.ndarray) -> None:
        if index_of(image) == 3:
            raise RuntimeError("consumer broke")
        sink.on_frame(t_ns, t_device_ns, image)

    cam = OpenCvCamera(CameraConfig("side", str(video), realtime=False), on_frame, sink.on_event)
    with cam:
        wait_for(lambda: cam.health is Health.DISCONNECTED, message="end of file")
    assert sink.indices == [0, 1, 2, 4, 5, 6, 7]
    assert cam.callback_errors == 1 and cam.counters.samples == 8


def test_frames_reach_an_episode_through_the_jpeg_encoder(tmp_path):
    fps, count = 30.0, 40
    video = write_video(tmp_path / "side.avi", range(count), fps)
    metadata = EpisodeMetadata(machine_kind="excavator", machine_model="m", machine_id="exc-1",
                               control_pattern="iso")
    with Recorder(RecorderConfig(tmp_path / "episodes", journal_interval_s=0.05, h5_interval_s=0.1),
                  metadata) as recorder:
        handle = recorder.add_stream(camera_spec("side", WIDTH, HEIGHT, fps, str(video)))
        encoder = JpegEncoder(recorder, handle, backlog=count)  # room for every frame: nothing dropped
        encoder.start()
        cam = OpenCvCamera(CameraConfig("side", str(video), realtime=False), encoder.submit,
                           lambda kind, detail: recorder.event(kind, **detail))
        with cam:
            assert cam.info is not None and (cam.info.width, cam.info.height) == (WIDTH, HEIGHT)
            wait_for(lambda: cam.health is Health.DISCONNECTED, message="end of file")
        encoder.stop()
        assert encoder.encoded == count and encoder.dropped == 0
    with h5py.File(recorder.paths.final, "r") as f:
        group = f["cameras/side"]
        images = [cv2.imdecode(np.asarray(jpeg, np.uint8), cv2.IMREAD_COLOR) for jpeg in group["frames"][()]]
        assert [index_of(image) for image in images] == list(range(count))
        assert group["t_device_ns"][()] == pytest.approx([i / fps * 1e9 for i in range(count)], abs=1e6)
        assert np.all(np.diff(group["t_ns"][()]) > 0)
        assert group.attrs["dropped"] == 0
        events = [(k.decode(), json.loads(d)) for k, d in zip(f["events/kind"][()], f["events/detail"][()],
                                                               strict=True)]
    assert ("camera_lost", {"camera": "side", "source": str(video), "reason": "end of file"}) in events
