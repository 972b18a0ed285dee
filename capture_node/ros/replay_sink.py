"""Replay into ROS 2 on the topics of the live node (`excap.ros.topics`, the one table both use).

- joystick/<dev>: sensor_msgs/Joy (axes, buttons; frame_id the device) on <prefix>/joy/<dev>
- control: sensor_msgs/JointState (name = machine functions, position = commands, frame_id enabled or
  disabled) on <prefix>/commands
- cameras/<name>: sensor_msgs/CompressedImage (format jpeg, the recorded bytes; frame_id the camera) on
  <prefix>/cameras/<name>/compressed
- machine joints: sensor_msgs/JointState on <prefix>/joint_states, from the decoded CAN messages the machine
  kind names (inclinometers, swing status, loader linkage) at most every 20 ms of recorded time, as the node does
- /diagnostics: diagnostic_msgs/DiagnosticArray at 1 Hz, one status per replayed stream (`excap replay: <path>`:
  messages published) and `excap replay` (recorded time, paused)
- can/<ch>/decoded/<Msg>: sensor_msgs/JointState (name = signals, position = values in physical units,
  NaN kept; frame_id <ch>) on <prefix>/can/<ch>/decoded/<Msg> (replay only)
- events: std_msgs/String, JSON {t_ns, stamp_ns, kind, detail}, on <prefix>/events (reliable, transient local:
  a subscriber that joins late still gets the events published so far)

Raw CAN frames are not published (no CAN frame message ships with the ROS 2 wheels); replay them onto
a bus with `--can`. Header stamps are the recorded t_ns, as UTC (t_ns + clock_offset_ns, default) or
as the recorded monotonic time. With `clock=True`, /clock (rosgraph_msgs/Clock) carries the recorded time being
replayed, every 10 ms of recorded time on its own thread against absolute deadlines (`Late.SKIP`: no drift, no
burst), for nodes run with use_sim_time. With `wait_subscriptions=N` the replay starts only once its publishers
have N matched subscriptions in all (or fails after `wait_timeout_s`), so a subscriber already running gets every
message from the first. The node (`excap_replay`) offers ~/pause and ~/resume (std_srvs/Trigger).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from excap.ros.env import prepare_ros_environment

prepare_ros_environment()

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CompressedImage, JointState, Joy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from excap.core.errors import EpisodeError, ExcapError  # noqa: E402
from excap.core.periodic import Late, Periodic  # noqa: E402
from excap.episode.reader import EpisodeReader, parse_detail  # noqa: E402
from excap.replay.timeline import Sample  # noqa: E402
from excap.ros import topics  # noqa: E402
from excap.ros.convert import joints_from_signals, ns_to_stamp_fields  # noqa: E402
from excap.schemas.machine_kinds import MACHINE_KINDS, JointSignal  # noqa: E402

NODE_NAME = "excap_replay"
STAMP_MODES = ("utc", "monotonic")
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
EVENTS_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
STATE_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
ACK_TIMEOUT_S = 2.0  # reliable messages still unacknowledged at the end get this long before the node goes
WAIT_POLL_S = 0.02
JOINT_PERIOD_NS = round(topics.JOINT_STATE_PERIOD_S * 1e9)
JOINT_STATES = "joint_states"  # the key of the machine's joint messages among a sample's prepared messages


def topic_for(path: str, prefix: str = topics.DEFAULT_PREFIX) -> str | None:
    """The topic a stream is republished on, or None for streams not published (raw CAN)."""
    topic = topics.for_stream(path, prefix)
    return None if topic is None else topic.name


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

    def __init__(self, prefix: str = topics.DEFAULT_PREFIX, stamps: str = "utc", clock: bool = False,
                 reliable: bool = False, wait_subscriptions: int = 0, wait_timeout_s: float = 10.0) -> None:
        if stamps not in STAMP_MODES:
            raise ValueError(f"stamps must be one of {', '.join(STAMP_MODES)}, not {stamps!r}")
        self.prefix = prefix
        self.stamps = stamps
        self.publish_clock = clock
        self.qos = RELIABLE if reliable else qos_profile_sensor_data
        self.wait_subscriptions = wait_subscriptions
        self.wait_timeout_s = wait_timeout_s
        self.controller: Any = None  # the Replay: pause() / resume() for the services, its scheduler for /clock
        self.published: dict[str, int] = {}
        self.clock_published = 0
        self._offset_ns = 0
        self._topics: dict[str, str] = {}
        self._types: dict[str, type] = {}
        self._publishers: dict[str, Any] = {}
        self._clock_pub: Any = None
        self._clock_thread: Periodic | None = None
        self._joint_pub: Any = None
        self._diagnostics_pub: Any = None
        self._state_pub: Any = None
        self._joints: tuple[JointSignal, ...] = ()
        self._joint_messages: set[str] = set()
        self._signals: dict[str, dict[str, float]] = {}
        self._last_joint_ns: int | None = None
        self._build: dict[str, Callable[..., Any]] = {}
        self._joint_paths: dict[str, tuple[str, list[str]]] = {}  # decoded stream -> (message, signals)
        self.context: Any = None
        self.node: Any = None
        self._executor: Any = None
        self._thread: threading.Thread | None = None

    def paths(self, reader: EpisodeReader) -> list[str]:
        self._offset_ns = int(reader.metadata.get("clock_offset_ns", 0))
        kind = MACHINE_KINDS.get(str(reader.metadata.get("machine_kind", "")))
        self._joints = kind.joints if kind is not None else ()
        self._joint_messages = {name.partition(".")[0] for joint in self._joints
                                for name in (joint.signal, joint.relative_to) if name}
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
                channel, message = info.path.split("/")[1], info.path.split("/")[3]
                self._build[info.path] = lambda s, n=signals, c=channel: self._joint_state(
                    s, n, [s.row[k] for k in n], c)
                if message in self._joint_messages:
                    self._joint_paths[info.path] = (message, signals)
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
            qos = EVENTS_QOS if path == "events" else self.qos
            self._publishers[path] = self.node.create_publisher(self._types[path], topic, qos)
        if self._joint_paths:
            self._joint_pub = self.node.create_publisher(JointState, topics.joint_states(self.prefix).name, self.qos)
        self._diagnostics_pub = self.node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        self.node.create_timer(topics.DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if self.publish_clock:
            self._clock_pub = self.node.create_publisher(Clock, topics.CLOCK, qos_profile_sensor_data)
        self.node.create_service(Trigger, "~/pause", self._srv_pause)
        self.node.create_service(Trigger, "~/resume", self._srv_resume)
        self._state_pub = self.node.create_publisher(String, "~/state", STATE_QOS)
        scheduler = getattr(self.controller, "scheduler", None)
        self._publish_state(paused=bool(getattr(scheduler, "paused", False)))
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="replay-ros", daemon=True)
        self._thread.start()
        if self.wait_subscriptions > 0:
            try:
                self._wait_for_subscriptions()
            except BaseException:
                self.close()  # the replay closes only the sinks that opened
                raise
        scheduler = getattr(self.controller, "scheduler", None)
        if self._clock_pub is not None and scheduler is not None:
            period_s = topics.CLOCK_PERIOD_NS / 1e9 / scheduler.rate
            self._clock_thread = Periodic("replay-clock", period_s, lambda _i: self._publish_clock(scheduler),
                                          late=Late.SKIP)
            self._clock_thread.start()

    def _all_publishers(self) -> list[Any]:
        extra = [p for p in (self._joint_pub, self._diagnostics_pub, self._clock_pub) if p is not None]
        return [*self._publishers.values(), *extra]

    def subscriptions(self) -> int:
        """Matched subscriptions summed over every topic this replay publishes (/clock and /diagnostics too)."""
        return sum(p.get_subscription_count() for p in self._all_publishers())

    def _wait_for_subscriptions(self) -> None:
        """Block until `wait_subscriptions` subscriptions are matched; ExcapError after `wait_timeout_s`."""
        scheduler = getattr(self.controller, "scheduler", None)
        deadline = time.monotonic() + self.wait_timeout_s
        stop = threading.Event()
        while self.subscriptions() < self.wait_subscriptions:
            if scheduler is not None and scheduler.stopped:
                return
            if time.monotonic() >= deadline:
                raise ExcapError(f"--wait-subscribers {self.wait_subscriptions}: only {self.subscriptions()} "
                                 f"subscriptions to the replay's topics after {self.wait_timeout_s:g} s")
            stop.wait(WAIT_POLL_S)

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.1)
            except Exception:  # the context is shutting down
                return

    def prepare(self, sample: Sample) -> list[tuple[str, bytes]]:
        """The messages a sample becomes, built and serialized (CDR) ahead of its due time: (stream path or
        JOINT_STATES, message); at the due time they are published as they are."""
        build = self._build.get(sample.path)
        if build is None:
            return []
        messages = [(sample.path, serialize_message(build(sample)))]
        joint = self._joint_paths.get(sample.path)
        if joint is not None:
            joints = self._joint_message(sample, *joint)
            if joints is not None:
                messages.append((JOINT_STATES, serialize_message(joints)))
        return messages

    def emit(self, prepared: list[tuple[str, bytes]]) -> None:
        if self.context is None or not self.context.ok():
            return
        for key, msg in prepared:
            publisher = self._joint_pub if key == JOINT_STATES else self._publishers[key]
            publisher.publish(msg)
            self.published[key] = self.published.get(key, 0) + 1

    def _joint_message(self, sample: Sample, message: str, signals: list[str]) -> JointState | None:
        """The machine's joints from the latest decoded messages, at most every 20 ms of recorded time (a replay
        that starts again from the beginning, `--loop`, starts the period and the joints seen again, so every pass
        publishes the same messages)."""
        if self._last_joint_ns is not None and sample.t_ns < self._last_joint_ns:  # a new pass of a loop
            self._signals.clear()
            self._last_joint_ns = None
        self._signals[message] = {name: float(sample.row[name]) for name in signals}
        if self._last_joint_ns is not None and sample.t_ns - self._last_joint_ns < JOINT_PERIOD_NS:
            return None
        names, positions = joints_from_signals(self._signals, self._joints)
        if not names:
            return None
        self._last_joint_ns = sample.t_ns
        return self._header(JointState(name=names, position=positions), sample, "")

    def _publish_clock(self, scheduler: Any) -> None:
        t_ns = scheduler.recorded_now_ns()
        if t_ns is None or self.context is None or not self.context.ok():
            return
        clock = Clock()
        clock.clock.sec, clock.clock.nanosec = stamp_fields(t_ns, self.stamps, self._offset_ns)
        self._clock_pub.publish(clock)
        self.clock_published += 1

    def _publish_diagnostics(self) -> None:
        scheduler = getattr(self.controller, "scheduler", None)
        position = None if scheduler is None else scheduler.recorded_now_ns()
        paused = scheduler is not None and scheduler.paused
        statuses = [DiagnosticStatus(level=DiagnosticStatus.OK, name="excap replay", hardware_id=NODE_NAME,
                                     message="paused" if paused else "replaying",
                                     values=[KeyValue(key="recorded_t_ns", value=str(position)),
                                             KeyValue(key="clock_published", value=str(self.clock_published))])]
        for path in self._topics:
            statuses.append(DiagnosticStatus(level=DiagnosticStatus.OK, name=f"excap replay: {path}",
                                             hardware_id=NODE_NAME, message=self._topics[path],
                                             values=[KeyValue(key="published", value=str(self.published.get(path,
                                                                                                             0)))]))
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)

    def pause(self) -> None:
        self._publish_state(paused=True)

    def resume(self) -> None:
        self._publish_state(paused=False)

    def _publish_state(self, paused: bool) -> None:
        """~/state (latched JSON): whether the replay is paused; a controller sees it before calling a service."""
        if self._state_pub is None or self.context is None or not self.context.ok():
            return
        self._state_pub.publish(String(data=json.dumps({"paused": paused})))

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
        if self._clock_thread is not None:
            self._clock_thread.stop(2)
        for publisher in self._all_publishers():  # let reliable subscribers take what is still in flight
            if publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE:
                publisher.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S))
        if self.node is not None:
            self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if self._thread is not None:
            self._thread.join(5)
        self.context = None
