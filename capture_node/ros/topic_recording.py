"""The ROS topics the excap_recorder node records: Joy topics as joystick streams, Image and CompressedImage topics
as camera streams (JPEG passed through, other encodings encoded off the executor's threads), a JointState topic of
machine-function commands as /control. Each topic has its own mutually exclusive callback group, so its messages
are taken (and time-stamped) in order; a message that does not fit its stream is not recorded, with one warning."""

# ruff: noqa: E402  (rclpy is imported after the environment is prepared)
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from excap.ros.env import prepare_ros_environment

prepare_ros_environment()

import cv2
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState, Joy

from excap.core.clock import now_ns
from excap.core.errors import ExcapError
from excap.episode.streams import camera_spec, joystick_spec
from excap.record.switch import TeeStream
from excap.ros.convert import commands_from_joint_state, image_to_bgr, is_jpeg, joy_row, stamp_to_ns
from excap.ros.image_encoder import MessageJpegEncoder
from excap.station.ros_topics import parse_topic_entry

if TYPE_CHECKING:
    from excap.ros.node import ExcapRecorderNode


class RecordedTopics:
    """The node's recorded topics (parameters joy_topics, image_topics, compressed_image_topics, command_topic)."""

    def __init__(self, node: "ExcapRecorderNode", warn_once: Callable[[str, str], None]) -> None:
        self.node = node
        self.settings = node.settings
        self.station = node.station
        self.profile = node.profile
        self.switch = node.switch
        self.control = node.control
        self._warn_once = warn_once
        self._lock = threading.Lock()
        self._encoders: dict[str, MessageJpegEncoder] = {}

    def subscribe(self) -> None:
        """Subscribe the topics the node's parameters name; ExcapError for a bad or doubly used entry."""
        s = self.settings
        taken: dict[str, str] = {f"joystick/{j.name}": f"station joystick {j.name}" for j in self.station.joysticks}
        taken |= {f"cameras/{c.name}": f"station camera {c.name}" for c in self.station.cameras}

        def claim(kind: str, entry: str, image: bool = False) -> tuple[str, str]:
            try:
                name, topic = parse_topic_entry(entry, image=image)
            except ValueError as exc:
                raise ExcapError(f"parameter {kind}: {exc}") from exc
            path = f"{'cameras' if image else 'joystick'}/{name}"
            if path in taken:
                raise ExcapError(f"parameter {kind}: {topic} and {taken[path]} both record to /{path}")
            taken[path] = topic
            return name, topic

        # One mutually exclusive group per topic: a topic's messages are taken (and time-stamped) in order.
        for entry in s.joy_topics:
            name, topic = claim("joy_topics", entry)
            self.node.create_subscription(Joy, topic, lambda msg, n=name, t=topic: self._on_joy(n, t, msg),
                                     qos_profile_sensor_data, callback_group=MutuallyExclusiveCallbackGroup())
        for entry in s.image_topics:
            name, topic = claim("image_topics", entry, image=True)
            self.node.create_subscription(Image, topic, lambda msg, n=name, t=topic: self._on_image(n, t, msg),
                                     qos_profile_sensor_data, callback_group=MutuallyExclusiveCallbackGroup())
        for entry in s.compressed_image_topics:
            name, topic = claim("compressed_image_topics", entry, image=True)
            self.node.create_subscription(CompressedImage, topic,
                                     lambda msg, n=name, t=topic: self._on_compressed(n, t, msg),
                                     qos_profile_sensor_data, callback_group=MutuallyExclusiveCallbackGroup())
        if s.command_topic:
            self.node.create_subscription(JointState, s.command_topic, self._on_command, qos_profile_sensor_data,
                                     callback_group=MutuallyExclusiveCallbackGroup())

    def _on_joy(self, name: str, topic: str, msg: Joy) -> None:
        row = joy_row(now_ns(), msg)
        spec = joystick_spec(name, [f"axis{i}" for i in range(len(row[2]))],
                             [f"button{i}" for i in range(len(row[3]))], backend="ros2", device_name=topic)
        try:
            tee = self.switch.stream(spec)
        except ExcapError:
            self._warn_once(f"joy:{name}", f"{topic}: axes/buttons count changed; such messages are not recorded")
            self._stream_for(f"joystick/{name}").reject()
            return
        tee.put(row)

    def _stream_for(self, path: str) -> TeeStream:
        return next(t for t in self.switch.streams() if t.spec.path == path)

    def _camera_stream(self, name: str, topic: str, width: int, height: int) -> TeeStream:
        spec = camera_spec(name, width, height, 0.0, source=f"ros2:{topic}")
        for tee in self.switch.streams():
            if tee.spec.path == spec.path:
                return tee
        return self.switch.stream(spec)

    def _encoder(self, name: str, tee: TeeStream, to_image: Any) -> MessageJpegEncoder:
        with self._lock:
            encoder = self._encoders.get(name)
            if encoder is None:
                encoder = MessageJpegEncoder(self.switch, tee, to_image, self.settings.jpeg_quality)
                encoder.start()
                self._encoders[name] = encoder
            return encoder

    def _on_image(self, name: str, topic: str, msg: Image) -> None:
        t_ns = now_ns()
        tee = self._camera_stream(name, topic, int(msg.width), int(msg.height))
        self._encoder(name, tee, image_to_bgr).submit(t_ns, stamp_to_ns(msg.header.stamp), msg)

    def _on_compressed(self, name: str, topic: str, msg: CompressedImage) -> None:
        t_ns = now_ns()
        t_device_ns = stamp_to_ns(msg.header.stamp)
        path = f"cameras/{name}"
        tee = next((t for t in self.switch.streams() if t.spec.path == path), None)
        if tee is None:
            image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_UNCHANGED)
            if image is None:
                self._warn_once(f"img:{name}", f"{topic}: cannot decode format {msg.format!r}")
                return
            tee = self._camera_stream(name, topic, image.shape[1], image.shape[0])
        if is_jpeg(msg.format):
            tee.put((t_ns, t_device_ns, bytes(msg.data)))
        else:
            self._encoder(name, tee, _decode_compressed).submit(t_ns, t_device_ns, msg)

    def _on_command(self, msg: JointState) -> None:
        values, unknown = commands_from_joint_state(self.profile.functions, msg.name, msg.position)
        if unknown:
            self._warn_once("cmd", f"{self.settings.command_topic}: not machine functions: {', '.join(unknown)}")
        self.control.put((now_ns(), values, True))

    def stop(self) -> None:
        """Stop the image encoders (what they hold is recorded first)."""
        for encoder in self._encoders.values():
            encoder.stop()


def _decode_compressed(msg: CompressedImage) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {msg.format!r} image")
    return image


__all__ = ["RecordedTopics"]
