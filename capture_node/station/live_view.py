"""A station's live streams over the Foxglove WebSocket protocol (Foxglove SDK), for watching a session in Foxglove
while it records: `excap station --foxglove PORT`, `excap node --foxglove PORT`.

Channels (topic: schema, encoding):

| topic | what |
|---|---|
| `/excap/cameras/<name>` | foxglove.CompressedImage: the JPEG bytes encoded for recording, not encoded again |
| `/excap/joy/<device>` | JSON: `axes`, `buttons` of each station joystick |
| `/excap/commands` | JSON: `enabled`, `link` (state), `commands` {function: value in [-1, 1]} |
| `/excap/can/<channel>/<Message>` | JSON: the decoded signals of each CAN message (physical units), 10 Hz |
| `/excap/events` | foxglove.Log: every event (start, stop, marker, drop, fault, ...), WARNING for faults and drops |
| `/excap/health` | JSON: the station page's findings (`subject`, `level` 0..2, `text`), 1 Hz |
| `/tf` | foxglove.FrameTransforms: the machine's link poses from its decoded joints (machine_poses), 10 Hz |

Publishing never happens on a recording path. The station's callbacks (driver threads) only append to a bounded
deque per channel (cameras keep the latest frame only, the others the latest `QUEUE_LENGTH` items) and wake the
view's own thread, which hands the items to the SDK; the SDK's server keeps a bounded backlog per viewer. A slow
or stalled viewer therefore loses frames of its own (counted in `dropped`), never the recorder's.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import foxglove
from foxglove.channels import CompressedImageChannel, FrameTransformsChannel, LogChannel
from foxglove.messages import (
    CompressedImage,
    FrameTransform,
    FrameTransforms,
    Log,
    LogLevel,
    Quaternion,
    Timestamp,
    Vector3,
)

from excap.core.clock import now_ns, utc_offset_ns
from excap.core.periodic import Worker
from excap.drivers.joystick.base import JoystickSample
from excap.schemas.machine_poses import joint_angles, machine_poses
from excap.station.health import assess
from excap.station.runtime import CameraFrame, CommandState, StationRuntime
from excap.station.status import StationMonitor

DEFAULT_HOST = "127.0.0.1"
PREFIX = "/excap"
QUEUE_LENGTH = 64  # items kept per channel while the view's thread is behind (cameras: 1, the latest)
SIGNALS_PERIOD_S = 0.1
HEALTH_PERIOD_S = 1.0
BACKLOG = 256  # messages the server keeps per viewer before it drops that viewer's oldest
WARNING_EVENTS = ("fault", "drop", "start_override")
JSON_OBJECT = {"type": "object"}


def _timestamp(t_ns: int) -> Timestamp:
    sec, nsec = divmod(max(0, t_ns), 1_000_000_000)
    return Timestamp(sec=sec, nsec=nsec)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class ViewStats:
    offered: dict[str, int] = field(default_factory=dict)  # items the station handed to the view, per topic
    published: dict[str, int] = field(default_factory=dict)  # items given to the server
    dropped: dict[str, int] = field(default_factory=dict)  # items replaced before the view's thread took them


class _Slot:
    """A bounded queue of one channel: appends never block (a full queue drops its oldest item)."""

    def __init__(self, length: int) -> None:
        self.items: deque[Any] = deque(maxlen=length)
        self.offered = 0

    def put(self, item: Any) -> None:
        self.items.append(item)
        self.offered += 1

    def take(self) -> list[Any]:
        taken = []
        while True:
            try:
                taken.append(self.items.popleft())
            except IndexError:
                return taken


class LiveView:
    """Serves `runtime`'s live streams on a Foxglove WebSocket server at `host`:`port` (0: any free port)."""

    def __init__(self, runtime: StationRuntime, monitor: StationMonitor | None, port: int,
                 host: str = DEFAULT_HOST, name: str = "excap station") -> None:
        self.runtime = runtime
        self.monitor = monitor
        self.host = host
        self.requested_port = port
        self.name = name
        self.stats = ViewStats()
        self._context = foxglove.Context()
        self._server: Any = None
        self._channels: dict[str, Any] = {}
        self._slots: dict[str, _Slot] = {}
        self._slots_lock = threading.Lock()
        self._wake = threading.Event()
        self._last_signals: dict[str, float] = {}
        self._worker = Worker("live-view", self._run)
        self._subscription: Any = None
        self._offset_ns = 0  # monotonic t_ns + this = UTC, for the messages' timestamps

    @property
    def port(self) -> int:
        return int(self._server.port) if self._server is not None else 0

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def start(self) -> LiveView:
        self._offset_ns = utc_offset_ns()
        self._server = foxglove.start_server(name=self.name, host=self.host, port=self.requested_port,
                                             context=self._context, message_backlog_size=BACKLOG)
        for camera in self.runtime.config.cameras:
            self._image_channel(camera.name)
        self._channel(f"{PREFIX}/events", lambda topic: LogChannel(topic, context=self._context))
        self._subscription = self.runtime.subscribe(joystick=self._on_joystick, command=self._on_command,
                                                    frame=self._on_frame, event=self._on_event)
        self._worker.start()
        return self

    def stop(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
        self._worker.request_stop()
        self._wake.set()
        self._worker.join(5)
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- from the station's threads: append and wake, nothing else ---------------------------------

    def _slot(self, topic: str, length: int = QUEUE_LENGTH) -> _Slot:
        slot = self._slots.get(topic)
        if slot is None:
            with self._slots_lock:
                slot = self._slots.setdefault(topic, _Slot(length))
        return slot

    def _offer(self, topic: str, item: Any, length: int = QUEUE_LENGTH) -> None:
        self._slot(topic, length).put(item)
        self._wake.set()

    def _on_joystick(self, sample: JoystickSample) -> None:
        self._offer(f"{PREFIX}/joy/{sample.device}", sample)

    def _on_command(self, command: CommandState) -> None:
        self._offer(f"{PREFIX}/commands", command)

    def _on_frame(self, frame: CameraFrame) -> None:
        self._offer(f"{PREFIX}/cameras/{frame.camera}", frame, length=1)

    def _on_event(self, kind: str, t_ns: int, detail: dict[str, Any]) -> None:
        self._offer(f"{PREFIX}/events", (kind, t_ns, detail), length=4 * QUEUE_LENGTH)

    # -- the view's own thread -------------------------------------------------------------------

    def _run(self) -> None:
        next_signals = next_health = 0.0
        while not self._worker.stopping:
            self._wake.wait(SIGNALS_PERIOD_S)
            self._wake.clear()
            self._drain()
            now = now_ns() / 1e9
            if now >= next_signals:
                next_signals = now + SIGNALS_PERIOD_S
                self._publish_signals()
            if now >= next_health and self.monitor is not None:
                next_health = now + HEALTH_PERIOD_S
                self._publish_health()

    def _drain(self) -> None:
        with self._slots_lock:
            slots = list(self._slots.items())
        for topic, slot in slots:
            items = slot.take()
            taken = self.stats.published.get(topic, 0) + self.stats.dropped.get(topic, 0) + len(items)
            self.stats.offered[topic] = slot.offered
            self.stats.dropped[topic] = self.stats.dropped.get(topic, 0) + max(0, slot.offered - taken)
            for item in items:
                self._publish(topic, item)
                self.stats.published[topic] = self.stats.published.get(topic, 0) + 1

    def _publish(self, topic: str, item: Any) -> None:
        if isinstance(item, CameraFrame):
            channel = self._image_channel(item.camera)
            channel.log(CompressedImage(timestamp=_timestamp(item.t_ns + self._offset_ns),
                                        frame_id=item.camera, data=item.jpeg, format="jpeg"), log_time=item.t_ns)
        elif isinstance(item, JoystickSample):
            self._json(topic).log({"device": item.device, "axes": [_finite(float(a)) for a in item.axes],
                                   "buttons": [int(b) for b in item.buttons]}, log_time=item.t_ns)
        elif isinstance(item, CommandState):
            functions = self.runtime.profile.functions
            self._json(topic).log({"enabled": item.enabled, "link": item.link_state,
                                   "commands": {f: _finite(float(v)) for f, v in zip(functions, item.values,
                                                                                      strict=False)}},
                                  log_time=item.t_ns)
        else:
            kind, t_ns, detail = item
            level = LogLevel.Warning if kind in WARNING_EVENTS else LogLevel.Info
            self._channels[f"{PREFIX}/events"].log(Log(timestamp=_timestamp(t_ns + self._offset_ns),
                                                       level=level, name=self.name,
                                                       message=f"{kind} {json.dumps(detail, sort_keys=True)}"),
                                                   log_time=t_ns)

    def _publish_signals(self) -> None:
        decoded = self.runtime.decoded()
        self._publish_poses(decoded)
        for key, values in decoded.items():
            latest = max((v.t_ns for v in values.values()), default=0)
            if self._last_signals.get(key) == latest:
                continue
            self._last_signals[key] = latest
            topic = f"{PREFIX}/can/{key}"
            self._json(topic).log({name: _finite(float(v.value)) for name, v in values.items()}, log_time=latest)
            self.stats.published[topic] = self.stats.published.get(topic, 0) + 1

    def _publish_poses(self, decoded: dict[str, Any]) -> None:
        """The machine's link poses from the latest decoded joint signals (`Message.Signal`, any channel)."""
        signals = {f"{key.rsplit('/', 1)[-1]}.{name}": value.value for key, values in decoded.items()
                   for name, value in values.items()}
        joints = joint_angles(self.runtime.profile.kind, signals)
        if not joints:
            return
        latest = max(value.t_ns for values in decoded.values() for value in values.values())
        stamp = _timestamp(latest + self._offset_ns)
        transforms = [FrameTransform(timestamp=stamp, parent_frame_id=pose.parent, child_frame_id=pose.child,
                                     translation=Vector3(x=pose.translation[0], y=pose.translation[1],
                                                         z=pose.translation[2]),
                                     rotation=Quaternion(x=float(pose.rotation[0]), y=float(pose.rotation[1]),
                                                         z=float(pose.rotation[2]), w=float(pose.rotation[3])))
                      for pose in machine_poses(self.runtime.profile.kind, joints)]
        topic = "/tf"
        channel = self._channel(topic, lambda t: FrameTransformsChannel(t, context=self._context))
        channel.log(FrameTransforms(transforms=transforms), log_time=latest)
        self.stats.published[topic] = self.stats.published.get(topic, 0) + 1

    def _publish_health(self) -> None:
        assert self.monitor is not None
        findings = [{"subject": f.subject, "level": int(f.level), "state": f.state, "text": f.text}
                    for f in assess(self.runtime, self.monitor)]
        topic = f"{PREFIX}/health"
        self._json(topic).log({"recording": self.runtime.recording, "findings": findings})
        self.stats.published[topic] = self.stats.published.get(topic, 0) + 1

    # -- channels --------------------------------------------------------------------------------

    def _channel(self, topic: str, make: Callable[[str], Any]) -> Any:
        channel = self._channels.get(topic)
        if channel is None:
            channel = self._channels[topic] = make(topic)
        return channel

    def _image_channel(self, camera: str) -> Any:
        return self._channel(f"{PREFIX}/cameras/{camera}",
                             lambda topic: CompressedImageChannel(topic, context=self._context))

    def _json(self, topic: str) -> Any:
        return self._channel(topic, lambda t: foxglove.Channel(t, schema=JSON_OBJECT, message_encoding="json",
                                                               context=self._context))
