"""Replay into ROS 2: every stream republished on topics mirroring the excap_recorder node's.

- joystick/<dev>: sensor_msgs/Joy (axes, buttons; frame_id the device) on <prefix>/joystick/<dev>
- control: sensor_msgs/JointState (name = machine functions, position = commands, frame_id enabled or
  disabled) on <prefix>/commands
- cameras/<name>: sensor_msgs/CompressedImage (format jpeg, the recorded bytes; frame_id the camera) on
  <prefix>/cameras/<name>/compressed
- can/<ch>/decoded/<Msg>: sensor_msgs/JointState (name = signals, position = values in physical units,
  NaN kept; frame_id <ch>) on <prefix>/can/<ch>/decoded/<Msg>
- events: std_msgs/String, JSON {t_ns, stamp_ns, kind, detail}, on <prefix>/events (reliable)

Raw CAN frames are not published (no CAN frame message ships with the ROS 2 wheels); replay them onto
a bus with `--can`. Header stamps are the recorded t_ns, as UTC (t_ns + clock_offset_ns, default) or
as the recorded monotonic time. With `clock=True`, /clock (rosgraph_msgs/Clock) carries the same
time base, every 10 ms of recorded time, for nodes run with use_sim_time. The node (`excap_replay`)
offers ~/pause and ~/resume (std_srvs/Trigger).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from typing import Any

from excap.ros.env import prepare_ros_environment

prepare_ros_environment()

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, JointState, Joy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from excap.core.errors import EpisodeError  # noqa: E402
from excap.episode.reader import EpisodeReader, parse_detail  # noqa: E402
from excap.replay.timeline import Sample  # noqa: E402
from excap.ros.convert import ns_to_stamp_fields  # noqa: E402

NODE_NAME = "excap_replay"
STAMP_MODES = ("utc", "monotonic")
CLOCK_PERIOD_NS = 10_000_000
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9_/]+")


def topic_for(path: str, prefix: str = "/excap") -> str | None:
    """The topic a stream is republished on, or None for streams not published (raw CAN)."""
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    parts = path.split("/")
    if path == "control":
        topic = f"{prefix}/commands"
    elif path == "events":
        topic = f"{prefix}/events"
    elif parts[0] == "joystick":
        topic = f"{prefix}/{path}"
    elif parts[0] == "cameras":
        topic = f"{prefix}/{path}/compressed"
    elif parts[0] == "can" and len(parts) == 4 and parts[2] == "decoded":
        topic = f"{prefix}/{path}"
    else:
        return None
    return _TOPIC_UNSAFE.sub("_", topic)


def stamp_ns(t_ns: int, mode: str, clock_offset_ns: int) -> int:
    return t_ns + clock_offset_ns if mode == "utc" else t_ns


INT32 = range(-(2**31), 2**31)


def stamp_fields(t_ns: int, mode: str, clock_offset_ns: int) -> tuple[int, int]:
    """(sec, nanosec) of a ROS time stamp; EpisodeError for a time ROS cannot represent (sec is 32-bit)."""
    sec, nanosec = ns_to_stamp_fields(stamp_ns(t_ns, mode, clock_offset_ns))
    if sec not in INT32:
        raise EpisodeError(f"recorded time {t_ns} ns ({mode} stamps) is beyond what a ROS time stamp holds; "
                           "replay a window with --start / --end, or use --ros-stamps monotonic")
    return sec, nanosec


class RosSink:
    """Publishes samples as ROS 2 messages from its own node, context and executor thread."""

    def __init__(self, prefix: str = "/excap", stamps: str = "utc", clock: bool = False,
                 reliable: bool = False) -> None:
        if stamps not in STAMP_MODES:
            raise ValueError(f"stamps must be one of {', '.join(STAMP_MODES)}, not {stamps!r}")
        self.prefix = prefix
        self.stamps = stamps
        self.publish_clock = clock
        self.qos = RELIABLE if reliable else qos_profile_sensor_data
        self.controller: Any = None  # an object with pause() / resume() (the Replay), for the services
        self.published: dict[str, int] = {}
        self._offset_ns = 0
        self._topics: dict[str, str] = {}
        self._types: dict[str, type] = {}
        self._publishers: dict[str, Any] = {}
        self._clock_pub: Any = None
        self._build: dict[str, Callable[..., Any]] = {}
        self._last_clock_ns: int | None = None
        self.context: Any = None
        self.node: Any = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None

    def paths(self, reader: EpisodeReader) -> list[str]:
        self._offset_ns = int(reader.metadata.get("clock_offset_ns", 0))
        paths = []
        for info in reader.streams:
            topic = topic_for(info.path, self.prefix)
            if topic is None:
                continue
            paths.append(info.path)
            self._topics[info.path] = topic
            self._types[info.path] = {"joystick": Joy, "camera": CompressedImage, "events": String}.get(
                info.kind, JointState)
            if info.kind == "control":
                names = reader.command_names
                self._build[info.path] = lambda s, n=names: self._joint_state(s, n, s.row["commands"],
                                                                              "enabled" if s.row["enabled"]
                                                                              else "disabled")
            elif info.kind == "joystick":
                device = info.path.split("/", 1)[1]
                self._build[info.path] = lambda s, d=device: self._joy(s, d)
            elif info.kind == "camera":
                camera = info.path.split("/", 1)[1]
                self._build[info.path] = lambda s, c=camera: self._image(s, c)
            elif info.kind == "can_decoded":
                signals = [c for c in info.columns if c not in ("t_ns", "source_address")]
                channel = info.path.split("/")[1]
                self._build[info.path] = lambda s, n=signals, c=channel: self._joint_state(
                    s, n, [s.row[k] for k in n], c)
            elif info.kind == "events":
                self._build[info.path] = self._event
        return paths

    # -- messages -------------------------------------------------------------------------------

    def _header(self, msg: Any, sample: Sample, frame_id: str) -> Any:
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp_fields(sample.t_ns, self.stamps, self._offset_ns)
        msg.header.frame_id = frame_id
        return msg

    def _joint_state(self, sample: Sample, names: list[str], values: Any, frame_id: str) -> JointState:
        positions = [float(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist()]
        return self._header(JointState(name=list(names), position=positions), sample, frame_id)

    def _joy(self, sample: Sample, device: str) -> Joy:
        axes = [float(a) for a in np.asarray(sample.row["axes"]).tolist()]
        buttons = [int(b) for b in np.asarray(sample.row["buttons"]).tolist()]
        return self._header(Joy(axes=axes, buttons=buttons), sample, device)

    def _image(self, sample: Sample, camera: str) -> CompressedImage:
        return self._header(CompressedImage(format="jpeg", data=sample.row["frames"]), sample, camera)

    def _event(self, sample: Sample) -> String:
        detail = parse_detail(sample.row["detail"])
        return String(data=json.dumps({"t_ns": sample.t_ns, "stamp_ns": stamp_ns(sample.t_ns, self.stamps,
                                                                                   self._offset_ns),
                                       "kind": sample.row["kind"], "detail": detail}, sort_keys=True))

    # -- sink -----------------------------------------------------------------------------------

    def open(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(NODE_NAME, context=self.context)
        for path, topic in self._topics.items():
            qos = RELIABLE if path == "events" else self.qos
            self._publishers[path] = self.node.create_publisher(self._types[path], topic, qos)
        if self.publish_clock:
            self._clock_pub = self.node.create_publisher(Clock, "/clock", qos_profile_sensor_data)
        self.node.create_service(Trigger, "~/pause", self._srv_pause)
        self.node.create_service(Trigger, "~/resume", self._srv_resume)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="replay-ros", daemon=True)
        self._thread.start()

    def subscriber_count(self) -> int:
        """The fewest subscribers any of the data topics has (0 until every topic has one)."""
        return min((p.get_subscription_count() for p in self._publishers.values()), default=0)

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception:  # the context is shutting down
                return

    def emit(self, sample: Sample) -> None:
        publisher = self._publishers.get(sample.path)
        if publisher is None or not self.context.ok():
            return
        publisher.publish(self._build[sample.path](sample))
        self.published[sample.path] = self.published.get(sample.path, 0) + 1
        if self._clock_pub is not None and (self._last_clock_ns is None
                                            or sample.t_ns - self._last_clock_ns >= CLOCK_PERIOD_NS):
            self._last_clock_ns = sample.t_ns
            clock = Clock()
            clock.clock.sec, clock.clock.nanosec = stamp_fields(sample.t_ns, self.stamps, self._offset_ns)
            self._clock_pub.publish(clock)

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def _control(self, response: Trigger.Response, action: str) -> Trigger.Response:
        if self.controller is None:
            response.success, response.message = False, "no replay attached"
            return response
        changed = getattr(self.controller, action)()
        response.success = bool(changed)
        response.message = {"pause": "paused" if changed else "already paused",
                             "resume": "resumed" if changed else "not paused"}[action]
        return response

    def _srv_pause(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._control(response, "pause")

    def _srv_resume(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._control(response, "resume")

    def close(self) -> None:
        if self.context is None:
            return
        if self.node is not None:
            self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(5)
        self.context = None
