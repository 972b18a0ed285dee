"""The `excap_recorder` ROS 2 node: runs a station's devices, publishes what it drives, and records
episodes of the devices and of ROS topics.

The devices of the station config (or of the built-in simulated station) stay open for as long as
the node runs (`StationRuntime`); joystick samples, commands, machine state and camera frames are
published whether or not an episode is recorded. Services (std_srvs/Trigger) under the node's name:
start, start_anyway, stop, discard, mark, mark_success, mark_failure. A start waits (bounded by
`ready_wait_s`) for the station's required devices and is refused while one has not delivered data;
start_anyway starts regardless and records a `start_override` event (as the station page does). State on ~/state
(JSON, latched), health on /diagnostics at 1 Hz. See docs/ros2.md.

One rclpy Node (parameters, publishers, services, shutdown); the topics it records are excap.ros.topic_recording's,
its parts that need no node are in excap.ros.config, convert, diagnostics and image_encoder.
"""

import json
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from excap.drivers.can.lean_import import import_can_without_mf4
from excap.ros.env import prepare_ros_environment

import_can_without_mf4()  # before the station's modules import python-can
prepare_ros_environment()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup  # noqa: E402
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import CompressedImage, JointState, Joy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from excap.core.errors import ExcapError  # noqa: E402
from excap.core.extras import missing_extra  # noqa: E402
from excap.core.stop_request import StopRequest  # noqa: E402
from excap.drivers.joystick.base import JoystickSample  # noqa: E402
from excap.drivers.sim.machines import sim_machine  # noqa: E402
from excap.record.recovery import recover_directory  # noqa: E402
from excap.record.switch import EpisodeResult  # noqa: E402
from excap.ros import topics  # noqa: E402
from excap.ros.config import NodeSettings, node_station, station_defaults  # noqa: E402
from excap.ros.convert import (  # noqa: E402
    joints_from_signals,
    joints_of_state,
)
from excap.ros.diagnostics import node_thresholds, station_diagnostics  # noqa: E402
from excap.ros.topic_recording import RecordedTopics  # noqa: E402
from excap.schemas.machine_kinds import MACHINE_KINDS  # noqa: E402
from excap.station.certification import start_certified  # noqa: E402
from excap.station.config import load_station_config  # noqa: E402
from excap.station.readiness import DevicesNotReady, override_detail, wait_ready  # noqa: E402
from excap.station.runtime import CameraFrame, CommandState, StationRuntime  # noqa: E402
from excap.station.status import StationMonitor  # noqa: E402

NODE_NAME = "excap_recorder"
SERVICES = ("start", "start_anyway", "stop", "discard", "mark", "mark_success", "mark_failure")
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class ExcapRecorderNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        station: str = self.declare_parameter("station_config", "").value
        config = load_station_config(Path(station).expanduser()) if station else None
        values: dict[str, Any] = {}
        for name, default in (NodeSettings.defaults() | (station_defaults(config) if config else {})).items():
            if isinstance(default, list):  # an empty list would be taken for a byte array: declare the type
                declared: Any = self.declare_parameter(name, default or Parameter.Type.STRING_ARRAY)
                values[name] = list(declared.value or [])
            else:
                values[name] = self.declare_parameter(name, default).value
        self.settings = settings = NodeSettings(**values)
        self.out_dir = Path(settings.out_dir).expanduser()
        self.station = node_station(settings, config, self.out_dir)
        self.profile = self.station.profile
        self.runtime = StationRuntime(self.station, seed=settings.seed, jpeg_quality=settings.jpeg_quality)
        if settings.command_topic and self.runtime.drives_commands:
            raise ExcapError(f"command_topic {settings.command_topic}: the station's joysticks drive /control")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for result in recover_directory(self.out_dir):
            self.get_logger().warning(result.line())
        self.switch = self.runtime.switch
        self.control = self.runtime.control
        self._lock = threading.Lock()
        self._closing = False
        self._warned: set[str] = set()
        self._data_group = ReentrantCallbackGroup()
        self._control_group = MutuallyExclusiveCallbackGroup()

        self.state_pub = self.create_publisher(String, "~/state", LATCHED)
        self.events_pub = self.create_publisher(String, "~/events", RELIABLE)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS, RELIABLE)
        for name in SERVICES:
            self.create_service(Trigger, f"~/{name}", getattr(self, f"_srv_{name}"),
                                callback_group=self._control_group)
        self.create_subscription(String, "~/marker", self._on_marker, RELIABLE, callback_group=self._control_group)
        self._create_device_publishers()
        self.recorded_topics = RecordedTopics(self, self._warn_once)
        self.recorded_topics.subscribe()
        if settings.publish_diagnostics:
            self.create_timer(settings.diagnostics_period_s, self._publish_diagnostics,
                              callback_group=self._data_group)
        self.runtime.open()
        self.monitor = StationMonitor(self.runtime, node_thresholds(settings.stale_after_s, settings.min_free_gb))
        self.live_view: Any = None
        try:
            self.monitor.start()
            self._start_live_view()
            self._publish_state()
            if settings.auto_start:
                self._start_episode()
            self.get_logger().info(f"ready: station={self.station.path} out_dir={self.out_dir}")
        except BaseException:  # Ctrl-C while starting included: the devices and a started episode are closed
            if self.live_view is not None:
                self.live_view.stop()
            self.monitor.stop()
            self.runtime.close(reason="exception", outcome="aborted")
            raise

    # -- set-up -------------------------------------------------------------------------------

    def _create_device_publishers(self) -> None:
        """Publishers for what the station drives: Joy per joystick, commands, machine state, cameras."""
        s, station = self.settings, self.station
        prefix = s.publish_prefix
        sensor = qos_profile_sensor_data
        self.joy_pubs = {j.name: self.create_publisher(Joy, topics.joy(prefix, j.name).name, sensor)
                         for j in station.joysticks} if s.publish_joy else {}
        self.commands_pub = None
        if s.publish_commands and self.runtime.drives_commands:
            self.commands_pub = self.create_publisher(JointState, topics.commands(prefix).name, sensor)
        self.camera_pubs = {c.name: self.create_publisher(CompressedImage, topics.camera(prefix, c.name).name,
                                                          sensor) for c in station.cameras} if s.publish_cameras else {}
        self.joint_pub = None
        kind = MACHINE_KINDS.get(self.profile.kind)
        self._can_joints = kind.joints if kind is not None else ()
        self._sim_joints = sim_machine(self.profile.kind).joints if station.simulated_machine else ()
        if s.publish_joint_states and (station.simulated_machine or station.cans):
            self.joint_pub = self.create_publisher(JointState, topics.joint_states(prefix).name, sensor)
            self.create_timer(topics.JOINT_STATE_PERIOD_S, self._publish_joint_state, callback_group=self._data_group)
        self._subscription = self.runtime.subscribe(
            joystick=self._publish_joy if self.joy_pubs else None,
            command=self._publish_command if self.commands_pub is not None else None,
            frame=self._publish_frame if self.camera_pubs else None)

    def _start_live_view(self) -> None:
        """The station's live streams to Foxglove (`foxglove_port` >= 0), off the recording path."""
        port = self.settings.foxglove_port
        if port < 0:
            return
        if port > 65535:
            raise ExcapError(f"parameter foxglove_port: must be -1 (none) or 0..65535, not {port}")
        try:
            from excap.station.live_view import LiveView
        except ImportError as exc:
            raise missing_extra("node --foxglove", "viewers") from exc
        self.live_view = LiveView(self.runtime, self.monitor, port, self.settings.foxglove_host,
                                  name="excap node").start()
        print(f"foxglove live view: {self.live_view.url}", file=sys.stderr, flush=True)

    # -- recorded topics ----------------------------------------------------------------------

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _on_marker(self, msg: String) -> None:
        try:
            self._mark(msg.data)
        except ExcapError as exc:
            self._warn_once("marker", f"marker ignored: {exc}")

    # -- published (what the station drives) --------------------------------------------------

    def _stamp(self, msg: Any) -> None:
        msg.header.stamp = self.get_clock().now().to_msg()

    def _publish(self, publisher: Any, msg: Any) -> None:
        """Publish from a driver thread; after shutdown (Ctrl-C) the drivers run on briefly: skip."""
        if self._closing or not self.context.ok():
            return
        try:
            publisher.publish(msg)
        except RuntimeError:  # the context was shut down between the check and the call
            if self.context.ok():
                raise

    def _publish_joy(self, sample: JoystickSample) -> None:
        publisher = self.joy_pubs.get(sample.device)
        if publisher is None:
            return
        msg = Joy(axes=[float(a) for a in sample.axes], buttons=[int(b) for b in sample.buttons])
        self._stamp(msg)
        msg.header.frame_id = sample.device
        self._publish(publisher, msg)

    def _publish_command(self, command: CommandState) -> None:
        assert self.commands_pub is not None
        msg = JointState(name=list(self.profile.functions), position=[float(v) for v in command.values])
        self._stamp(msg)
        msg.header.frame_id = "enabled" if command.enabled else "disabled"
        self._publish(self.commands_pub, msg)

    def _publish_frame(self, frame: CameraFrame) -> None:
        publisher = self.camera_pubs.get(frame.camera)
        if publisher is None:
            return
        msg = CompressedImage(format="jpeg", data=frame.jpeg)
        self._stamp(msg)
        msg.header.frame_id = frame.camera
        self._publish(publisher, msg)

    def _publish_joint_state(self) -> None:
        """The simulated machine's joints, else those the decoded CAN traffic reports (when it does); the joints
        are the machine kind's (excap.drivers.sim.machines, excap.schemas.machine_kinds)."""
        assert self.joint_pub is not None
        state = self.runtime.machine_state
        if state is not None:
            names, positions, velocities = joints_of_state(state, self._sim_joints)
            msg = JointState(name=names, position=positions, velocity=velocities)
        else:
            signals: dict[str, dict[str, float]] = {}
            for key, values in self.runtime.decoded().items():
                signals.setdefault(key.partition("/")[2], {}).update({k: v.value for k, v in values.items()})
            names, positions = joints_from_signals(signals, self._can_joints)
            if not names:
                return
            msg = JointState(name=names, position=positions)
        self._stamp(msg)
        self._publish(self.joint_pub, msg)

    # -- state and health ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        recorder = self.runtime.recorder
        last = self.runtime.last
        return {
            "node": self.get_fully_qualified_name(),
            "station": str(self.station.path),
            "sim": self.station.simulated_machine,
            "out_dir": str(self.out_dir),
            "recording": recorder is not None,
            "episode_id": recorder.metadata.episode_id if recorder else None,
            "path": str(recorder.paths.final) if recorder else None,
            "outcome": recorder.metadata.outcome if recorder else None,
            "markers": self.runtime.markers,
            "last": None if last is None else {"episode_id": last.episode_id, "outcome": last.outcome,
                                               "path": str(last.path) if last.path else None,
                                               "discarded": last.discarded},
        }

    def _publish_state(self) -> None:
        self.state_pub.publish(String(data=json.dumps(self.state(), sort_keys=True)))

    def _publish_event(self, kind: str, **detail: Any) -> None:
        self.events_pub.publish(String(data=json.dumps({"kind": kind, **detail}, sort_keys=True)))

    def diagnostics(self) -> list[DiagnosticStatus]:
        """The station's health findings (the rules of the station page), one status per subject."""
        return station_diagnostics(self.runtime, self.monitor, self.settings.machine_id)

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=self.diagnostics())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)

    # -- services -----------------------------------------------------------------------------

    def _start_episode(self, override: bool = False) -> str:
        missing = wait_ready(self.runtime, self.settings.ready_wait_s)  # the station's required devices
        if missing and not override:
            raise DevicesNotReady(missing)
        recorder, _ = start_certified(self.runtime)  # the station's certification policy, as on the page
        if missing:
            self.runtime.switch.event("start_override",
                                      **override_detail(missing, "ros", recorder.metadata.operator_id))
        self._publish_state()
        self._publish_event("start", episode_id=recorder.metadata.episode_id, path=str(recorder.paths.final))
        return str(recorder.paths.final)

    def _stop_episode(self, reason: str, discard: bool = False) -> str:
        result: EpisodeResult | None
        if discard:
            result = self.runtime.discard_episode(reason=reason)
        else:
            self.runtime.stop_episode(reason=reason)
            result = self.runtime.last
            assert result is not None
        self._publish_state()
        self._publish_event("discard" if discard else "stop", episode_id=result.episode_id, outcome=result.outcome,
                            path=str(result.path) if result.path else None)
        return str(result.path) if result.path else f"discarded {result.episode_id}"

    def _mark(self, text: str = "") -> str:
        index = self.runtime.mark(text)
        self._publish_event("marker", index=index, text=text)
        return f"marker {index}"

    def _set_outcome(self, outcome: str) -> str:
        self.runtime.set_outcome(outcome)
        self._publish_state()
        return f"outcome {outcome}"

    def _trigger(self, response: Trigger.Response, action: Any) -> Trigger.Response:
        try:
            response.message = action()
            response.success = True
        except ExcapError as exc:
            response.success = False
            response.message = str(exc)
        return response

    def _srv_start(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, self._start_episode)

    def _srv_start_anyway(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, lambda: self._start_episode(override=True))

    def _srv_stop(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, lambda: self._stop_episode("service"))

    def _srv_discard(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, lambda: self._stop_episode("discard", discard=True))

    def _srv_mark(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, self._mark)

    def _srv_mark_success(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, lambda: self._set_outcome("success"))

    def _srv_mark_failure(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        return self._trigger(response, lambda: self._set_outcome("failure"))

    # -- shutdown -----------------------------------------------------------------------------

    def close(self) -> Path | None:
        """Stop the devices and encoders, finish a running episode. Returns the episode's path, if any."""
        self._closing = True
        if self.live_view is not None:
            self.live_view.stop()
        self._subscription.cancel()
        self.monitor.stop()
        self.recorded_topics.stop()
        return self.runtime.close()


#: How often the spin loop looks at the stop request (seconds): the longest a stop waits to begin.
SPIN_TIMEOUT_S = 0.1


def main(argv: Sequence[str] | None = None, stop: StopRequest | None = None) -> int:
    """Run the node until Ctrl-C / SIGTERM (or `stop`, installed already). `argv` excludes the program name (ROS
    args after --ros-args)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv if argv is None else [sys.argv[0], *argv]
    stop = stop or StopRequest().install()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    context = rclpy.get_default_context()
    node = None
    try:
        node = ExcapRecorderNode()
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        while not stop.requested.is_set() and context.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ExcapError as exc:
        print(f"excap: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            path = node.close()
            if path is not None:
                print(path, flush=True)
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
