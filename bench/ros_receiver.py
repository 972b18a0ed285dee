"""A ROS 2 subscriber in its own process, for bench/replay_timing.py: what another node sees of a replay.

    python bench/ros_receiver.py OUT.json KEY=TOPIC=PKG/msg/TYPE ...

Subscribes (reliable) to each topic and to /clock, prints `ready` once its subscriptions exist, and records, per
message, the header stamp, the middleware's source and received timestamps and the monotonic time of the callback.
When its standard input closes it writes {KEY: [[stamp_ns, source_ns, received_ns, callback_ns], ...],
"/clock": [[clock_ns, callback_ns], ...]} to OUT.json and exits.
"""

import importlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from excap.ros.env import prepare_ros_environment

prepare_ros_environment()

import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402

from excap.ros.convert import stamp_to_ns  # noqa: E402
from excap.ros.replay_sink import RELIABLE  # noqa: E402


def message_type(name: str) -> Any:
    package, _, type_name = name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), type_name)


def main() -> None:
    out = Path(sys.argv[1])
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("replay_bench_receiver", context=context)
    arrivals: dict[str, list[tuple[int, ...]]] = {"/clock": []}
    for spec in sys.argv[2:]:
        key, topic, type_name = spec.split("=")
        got = arrivals.setdefault(key, [])
        node.create_subscription(message_type(type_name), topic, lambda m, info, a=got: a.append(
            (stamp_to_ns(m.header.stamp), info["source_timestamp"], info["received_timestamp"],
             time.monotonic_ns())), RELIABLE)
    node.create_subscription(Clock, "/clock", lambda m: arrivals["/clock"].append(
        (stamp_to_ns(m.clock), time.monotonic_ns())), qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), closed.set()), daemon=True).start()
    print("ready", flush=True)
    while not closed.is_set():
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    out.write_text(json.dumps(arrivals))


if __name__ == "__main__":
    main()
