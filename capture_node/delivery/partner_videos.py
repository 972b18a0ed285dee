"""Review videos as a partner receives them: rendered from the partner's redacted episode copy, faces blurred.

The video (`excap.review.render`: camera views above sticks, commands, signals and events) is drawn from the copy
`excap.delivery.partner_episodes` makes, so its overlays show only what passed the redaction allow-list (the
operator as the partner's pseudonym, no free text). Faces in camera frames are always blurred
(`excap.datasets.faces`): partners have no face setting of their own. Written as H.264 (`excap.datasets.h264`).

Videos are cached in DIR/.excap/partner-videos/<partner>/ under a name made of the episode's place and a key over
the copy's SHA-256 (which already covers the partner, the recorded bytes, the registry and the redaction policy)
and `VIDEO_VERSION`; older videos of the same episode are removed when a new one is made. Rendering needs the
`exports` extra (PyAV with libx264, and a face detector); without it `unavailable()` says why in one line.

Rendering takes a while (face detection runs on every camera frame), so `VideoQueue` renders on one background
thread: a request for a video that is not made yet queues it and is answered at once.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import queue
import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from excap.core.errors import EpisodeError, ExcapError
from excap.core.state_dir import FILE_MODE, private_dir, private_file, state_dir

VIDEO_DIR = "partner-videos"
VIDEO_VERSION = "1"  # bump when what a partner video shows changes: cached videos are made again
PARTNER_FPS = 10.0  # frames per second: a review video, not the recording (camera frames are blurred once each)
NO_VIDEO = ("review videos need the exports extra (PyAV with libx264 and a face detector): "
            "pip install 'excap[exports]'")

log = logging.getLogger("excap.serve")
_lock = threading.Lock()


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None if partner review videos can be made here, else the one-line reason why not."""
    try:
        from excap.datasets.faces import FaceBlurrer
        from excap.datasets.h264 import h264_available
    except ImportError:
        return NO_VIDEO
    if not h264_available():
        return NO_VIDEO
    try:
        FaceBlurrer()
    except RuntimeError:
        return NO_VIDEO
    return None


def _place(copy: Path) -> str:
    return copy.name.split("-", 1)[0]  # the copy's name starts with the episode's place in the folder


def video_target(root: Path, partner: str, copy: Path, copy_sha256: str) -> Path:
    """Where the partner's review video of its episode copy `copy` is (or will be) cached."""
    folder = private_dir(private_dir(state_dir(Path(root)) / VIDEO_DIR) / partner)
    key = hashlib.sha256(f"{VIDEO_VERSION}\0{copy_sha256}".encode()).hexdigest()
    return folder / f"{_place(copy)}-{key[:40]}.mp4"


class Stopped(ExcapError):
    """The server is stopping: the video being made is abandoned (made again when next asked for)."""


def partner_review_video(root: Path, partner: str, copy: Path, copy_sha256: str,
                         stop: threading.Event | None = None) -> Path:
    """The partner's review video of its episode copy `copy`, made now if there is no current one.
    ExcapError if it cannot be made here (see `unavailable`); EpisodeError if the episode has nothing to show;
    Stopped if `stop` is set meanwhile."""
    reason = unavailable()
    if reason is not None:
        raise ExcapError(reason)
    from excap.datasets.faces import FaceBlurrer
    from excap.datasets.h264 import H264Writer
    from excap.review.render import render_review_video

    target = video_target(root, partner, copy, copy_sha256)
    folder, place = target.parent, _place(copy)
    with _lock:
        if target.is_file():
            return target
        temporary = folder / f".{target.stem}.part.mp4"
        temporary.unlink(missing_ok=True)
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE))
        blurrer = FaceBlurrer()

        def blurred(image: np.ndarray) -> np.ndarray:
            if stop is not None and stop.is_set():
                raise Stopped(f"{copy.name}: the server is stopping")
            return blurrer.blur(image)[0]

        try:
            render_review_video(copy, temporary, fps=PARTNER_FPS, progress=False, writer=H264Writer,
                                frame_filter=blurred)
            os.replace(private_file(temporary), target)
        except Stopped:
            temporary.unlink(missing_ok=True)
            raise
        except (EpisodeError, ExcapError, OSError, ValueError, KeyError) as exc:
            temporary.unlink(missing_ok=True)
            raise EpisodeError(f"{copy.name}: no review video: {' '.join(str(exc).split())[:300]}") from exc
        for older in folder.glob(f"{place}-*.mp4"):
            if older != target:
                older.unlink(missing_ok=True)
        return target


PENDING = "pending"
FAILED = "failed"


@dataclass(eq=False)
class VideoQueue:
    """Partner review videos rendered one at a time on a background (daemon) thread."""

    root: Path
    _queue: queue.Queue[tuple[str, Path, str] | None] = field(default_factory=queue.Queue)
    _state: dict[Path, str] = field(default_factory=dict)  # target -> PENDING or FAILED
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _worker: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def video(self, partner: str, copy: Path, copy_sha256: str) -> Path | str:
        """The finished video, else PENDING (queued now if it was not) or FAILED (see the server's log)."""
        target = video_target(self.root, partner, copy, copy_sha256)
        if target.is_file():
            return target
        with self._lock:
            if self._stop.is_set():
                return FAILED
            state = self._state.get(target)
            if state is not None:
                return state
            self._state[target] = PENDING
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="excap-partner-videos", daemon=True)
                self._worker.start()
                _running.add(self)
        self._queue.put((partner, copy, copy_sha256))
        return PENDING

    def stop(self, timeout: float = 10.0) -> None:
        """Abandons the video being made and waits (up to `timeout` s) for the thread to end."""
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            partner, copy, copy_sha256 = item
            target = video_target(self.root, partner, copy, copy_sha256)
            try:
                partner_review_video(self.root, partner, copy, copy_sha256, self._stop)
            except Stopped:
                return
            except (ExcapError, OSError) as exc:
                log.warning("no review video: %s", exc)
                with self._lock:
                    self._state[target] = FAILED
                continue
            except Exception:  # a bug must not stop the worker; logged with its traceback
                log.exception("review video of %s failed", copy.name)
                with self._lock:
                    self._state[target] = FAILED
                continue
            with self._lock:
                self._state.pop(target, None)


_running: weakref.WeakSet[VideoQueue] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """At exit, a video being made is abandoned rather than cut off in the middle of writing its files."""
    for videos in list(_running):
        videos.stop(timeout=5.0)
