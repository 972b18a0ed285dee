"""The other ways to record the same camera streams, each run in its own process on the same frame rings:

- `floor`: the least any recorder of JPEG frames in HDF5 must do: `cv2.imencode` (excap's JPEG quality) on a thread
  per stream and a batched append of the bytes (variable-length uint8) every second, nothing else.
- `aloha`: ALOHA's recorder: raw frames kept in lists in RAM, written to HDF5 (one uint8 (N, H, W, 3) dataset per
  camera, chunked per frame) when the episode ends. The run stops at `ram_cap_mb` instead of exhausting the machine;
  the result says how much RAM ten minutes would need.
- `lerobot`: LeRobot's recorder: a PNG per frame (Pillow, compress level 1) written by a pool of writer threads (4
  per camera), and the video (PyAV, yuv420p, GOP 2, CRF 30) encoded from the PNGs after the episode.
- `mcap`: rosbag2-style MCAP (`mcap` writer, zstd chunks of 1 MB) of the JPEG-compressed frames, one channel per
  camera holding the raw JPEG bytes.

Each keeps the sequence numbers of the frames it stored, so frames lost anywhere (overwritten in the ring before it
read them, or dropped by its own queues) are gaps, counted as for excap.
"""

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import cv2
import h5py
import numpy as np

from excap.bench.measure import RecorderResult, RssSampler, cpu_s, disk_bytes, peak_rss_mb, sequence_gaps
from excap.drivers.camera.shm_ring import RingFrame, RingReader

ALTERNATIVES = ("floor", "aloha", "lerobot", "mcap")
BATCH_S = 1.0


class Streams:
    """A reader thread per ring, handing each frame to `handle(stream_index, frame)` until `stop`."""

    def __init__(self, rings: list[str], handle: Callable[[int, RingFrame], None]) -> None:
        self.readers = [RingReader(ring) for ring in rings]
        self.handle = handle
        self.stop = threading.Event()
        self.seqs: list[list[int]] = [[] for _ in rings]
        self.threads = [threading.Thread(target=self._run, args=(i,), name=f"read-{i}", daemon=True)
                        for i in range(len(rings))]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _run(self, index: int) -> None:
        reader = self.readers[index]
        while not self.stop.is_set():
            if reader.wait(0.1):
                for frame in reader.take():
                    self.handle(index, frame)
                    self.seqs[index].append(frame.seq)

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
        for reader in self.readers:
            reader.close()

    def lost(self) -> list[int]:
        return [sequence_gaps(np.array(seqs)) for seqs in self.seqs]


def _vlen(chunks: list[bytes]) -> np.ndarray:
    out = np.empty(len(chunks), dtype=object)
    for i, chunk in enumerate(chunks):
        out[i] = np.frombuffer(chunk, np.uint8)
    return out


def _append(dataset: h5py.Dataset, values: np.ndarray) -> None:
    start = dataset.shape[0]
    dataset.resize(start + len(values), axis=0)
    if values.dtype == object:  # plain slicing would turn equal-length frames into a 2-D array
        dataset.write_direct(values, dest_sel=np.s_[start:start + len(values)])
    else:
        dataset[start:] = values


class Floor:
    def __init__(self, work: Path, streams: int, quality: int) -> None:
        self.path = work / "floor.h5"
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.file = h5py.File(self.path, "w")
        vlen = h5py.vlen_dtype(np.uint8)
        self.frames = [self.file.create_dataset(f"cam{i:02d}/frames", (0,), vlen, maxshape=(None,), chunks=(64,))
                       for i in range(streams)]
        self.seq = [self.file.create_dataset(f"cam{i:02d}/seq", (0,), np.int64, maxshape=(None,), chunks=(1024,))
                    for i in range(streams)]
        self.pending: list[list[tuple[int, bytes]]] = [[] for _ in range(streams)]

    def handle(self, index: int, frame: RingFrame) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame.image, self.params)
        if ok:
            self.pending[index].append((frame.seq, jpeg.tobytes()))

    def tick(self) -> None:
        for index in range(len(self.pending)):
            batch, self.pending[index] = self.pending[index], []
            if batch:
                _append(self.frames[index], _vlen([b for _, b in batch]))
                _append(self.seq[index], np.array([s for s, _ in batch], np.int64))

    def finish(self) -> None:
        self.tick()
        self.file.close()

    def check(self) -> bool:
        with h5py.File(self.path, "r") as f:
            frames = f["cam00/frames"]
            return len(frames) > 0 and cv2.imdecode(frames[len(frames) - 1], cv2.IMREAD_COLOR) is not None


class Aloha:
    def __init__(self, work: Path, streams: int, ram_cap_mb: float) -> None:
        self.path = work / "aloha.h5"
        self.images: list[list[np.ndarray]] = [[] for _ in range(streams)]
        self.bytes = 0
        self.cap = ram_cap_mb * 1e6
        self.full = threading.Event()

    def handle(self, index: int, frame: RingFrame) -> None:
        if self.full.is_set():
            return
        self.images[index].append(frame.image)
        self.bytes += frame.image.nbytes
        if self.bytes >= self.cap:
            self.full.set()

    def tick(self) -> None:
        pass

    def finish(self) -> None:
        with h5py.File(self.path, "w") as f:
            for index, images in enumerate(self.images):
                if not images:
                    continue
                shape = images[0].shape
                dataset = f.create_dataset(f"observations/images/cam{index:02d}", (len(images), *shape), np.uint8,
                                           chunks=(1, *shape))
                for row, image in enumerate(images):
                    dataset[row] = image
        self.images = []

    def check(self) -> bool:
        with h5py.File(self.path, "r") as f:
            images = f["observations/images/cam00"]
            return bool(len(images) > 0 and images[len(images) - 1].any())


class LeRobot:
    def __init__(self, work: Path, streams: int, fps: float, codec: str) -> None:
        self.work = work
        self.fps = fps
        self.codec = codec
        self.dirs = [work / "images" / f"cam{i:02d}" for i in range(streams)]
        for folder in self.dirs:
            folder.mkdir(parents=True)
        self.pool = ThreadPoolExecutor(max_workers=4 * streams, thread_name_prefix="png")
        self.counts = [0] * streams
        self.backlog_peak = 0
        self.videos: list[Path] = []

    def handle(self, index: int, frame: RingFrame) -> None:
        number = self.counts[index]
        self.counts[index] += 1
        self.pool.submit(self._write, frame.image, self.dirs[index] / f"frame_{number:06d}.png")
        self.backlog_peak = max(self.backlog_peak, self.pool._work_queue.qsize())

    @staticmethod
    def _write(image: np.ndarray, path: Path) -> None:
        from PIL import Image

        Image.fromarray(image[:, :, ::-1]).save(path, compress_level=1)

    def tick(self) -> None:
        pass

    def finish(self) -> None:
        self.pool.shutdown(wait=True)
        for folder in self.dirs:
            self.videos.append(self._encode(folder))
            shutil.rmtree(folder)

    def _encode(self, folder: Path) -> Path:
        import av
        from PIL import Image

        path = self.work / f"{folder.name}.mp4"
        with av.open(str(path), "w") as container:
            stream = cast("av.VideoStream", container.add_stream(self.codec, rate=round(self.fps)))
            stream.pix_fmt = "yuv420p"
            stream.options = {"g": "2", "crf": "30"}
            first = True
            for png in sorted(folder.glob("frame_*.png")):
                with Image.open(png) as image:
                    rgb = image.convert("RGB")
                if first:
                    stream.width, stream.height = rgb.size
                    first = False
                for packet in stream.encode(av.VideoFrame.from_image(rgb)):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path

    def check(self) -> bool:
        import av

        with av.open(str(self.videos[0])) as container:
            return sum(1 for _ in container.decode(video=0)) > 0


class Mcap:
    def __init__(self, work: Path, streams: int, quality: int) -> None:
        from mcap.writer import CompressionType, Writer

        self.path = work / "episode.mcap"
        self.handle_file = open(self.path, "wb")  # noqa: SIM115 - closed in finish
        self.writer = Writer(self.handle_file, chunk_size=1024 * 1024, compression=CompressionType.ZSTD)
        self.writer.start(profile="", library="excap-bench")
        self.channels = [self.writer.register_channel(f"/cam{i:02d}/image/compressed", "jpeg", 0)
                         for i in range(streams)]
        self.params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        self.lock = threading.Lock()

    def handle(self, index: int, frame: RingFrame) -> None:
        ok, jpeg = cv2.imencode(".jpg", frame.image, self.params)
        if ok:
            with self.lock:
                self.writer.add_message(self.channels[index], frame.t_ns, jpeg.tobytes(), frame.t_ns, frame.seq)

    def tick(self) -> None:
        pass

    def finish(self) -> None:
        with self.lock:
            self.writer.finish()
            self.handle_file.close()

    def check(self) -> bool:
        from mcap.reader import make_reader

        with open(self.path, "rb") as f:
            for _schema, _channel, message in make_reader(f).iter_messages(reverse=True):
                return cv2.imdecode(np.frombuffer(message.data, np.uint8), cv2.IMREAD_COLOR) is not None
        return False


def run_alternative(kind: str, rings: list[str], seconds: float, fps: float, quality: int = 90,
                    ram_cap_mb: float = 2048.0, codec: str = "libx264", out_dir: Path | None = None) -> dict[str, Any]:
    """Record the rings for `seconds` the `kind` way (see the module); the measured result."""
    work = Path(tempfile.mkdtemp(prefix=f"excap-bench-{kind}-", dir=out_dir))
    try:
        recorder: Any
        if kind == "floor":
            recorder = Floor(work, len(rings), quality)
        elif kind == "aloha":
            recorder = Aloha(work, len(rings), ram_cap_mb)
        elif kind == "lerobot":
            recorder = LeRobot(work, len(rings), fps, codec)
        elif kind == "mcap":
            recorder = Mcap(work, len(rings), quality)
        else:
            raise ValueError(f"unknown recorder {kind!r} (known: {', '.join(ALTERNATIVES)})")
        streams = Streams(rings, recorder.handle)
        rss = RssSampler()
        cpu0, t0 = cpu_s(), time.monotonic()
        streams.start()
        deadline = t0 + seconds
        broke = ""
        while time.monotonic() < deadline:
            time.sleep(min(BATCH_S, max(0.0, deadline - time.monotonic())))
            recorder.tick()
            if isinstance(recorder, Aloha) and recorder.full.is_set():
                broke = f"RAM cap {ram_cap_mb:.0f} MB reached after {time.monotonic() - t0:.1f} s"
                break
        cpu1, t_stop = cpu_s(), time.monotonic()
        streams.join()
        recorder.finish()
        t_done = time.monotonic()
        result = RecorderResult(kind, len(rings), round(t_stop - t0, 2))
        result.peak_rss_mb = round(peak_rss_mb(), 1)
        result.rss_mb_over_time = rss.stop()
        result.stop_to_usable_s = round(t_done - t_stop, 3)
        result.frames_kept = sum(len(s) for s in streams.seqs)
        result.lost_per_stream = streams.lost()
        result.file_mb = round(disk_bytes(work) / 1e6, 1)
        result.usable = recorder.check()
        result.broke = broke
        if isinstance(recorder, Aloha):
            per_s = recorder.bytes / max(1e-9, t_stop - t0)
            result.extra["ram_mb_per_s"] = round(per_s / 1e6, 1)
            result.extra["ram_gb_for_10_min"] = round(per_s * 600 / 1e9, 1)
        if isinstance(recorder, LeRobot):
            result.extra["png_backlog_peak"] = recorder.backlog_peak
            result.extra["codec"] = codec
        result.finish(cpu1 - cpu0)
        return result.as_dict()
    finally:
        shutil.rmtree(work, ignore_errors=True)
