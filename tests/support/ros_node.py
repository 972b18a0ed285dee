"""Talking to the excap_recorder node from a test: spawn it as a process, and be a ROS node that calls its
services and keeps the messages it sees. Import only after `requirements.require_ros()` has passed."""

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import String
from std_srvs.srv import Trigger

from excap.ros.node import SERVICES
from tests.support.paths import REPO
from tests.support.waiting import wait_for

TIMEOUT = 25.0
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python ARGS` from the repository (in `env`, default this process's), stdout and stderr together."""
    own_paths = [] if env is None else [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ if env is None else env, PYTHONPATH=os.pathsep.join([str(REPO), *own_paths]),
               PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen[str]) -> str:
    """Ctrl-C the process if it still runs (kill it if it does not end), and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.communicate()[0]


class Client:
    """This test process as a ROS node: service calls, and the messages it has seen per topic.

    A DDS service drops its response when it has not yet matched the client's response reader (Fast DDS waits
    100 ms for that, then logs "client will not receive response"); on a loaded machine a call made as soon as
    `wait_for_service` returns can lose its answer. So the service clients are created first, the node's latched
    state topic is subscribed after them, and a call waits until the node has delivered its state: discovery
    announcements arrive in the order they were made, so by then the node has matched every response reader."""

    def __init__(self, node_name: str = "excap_recorder", services: tuple[str, ...] = SERVICES,
                 client_name: str = "excap_test_client") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(client_name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.messages: dict[str, list[Any]] = {}
        self.prefix = f"/{node_name}"
        self.clients = {name: self.node.create_client(Trigger, f"{self.prefix}/{name}") for name in services}
        self.subscribe(String, f"{self.prefix}/state", LATCHED)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                return

    def subscribe(self, msg_type: type, topic: str, qos: QoSProfile = qos_profile_sensor_data) -> None:
        if topic in self.messages:
            return  # already subscribed (the node's state topic always is)
        self.messages[topic] = []
        self.node.create_subscription(msg_type, topic, self.messages[topic].append, qos)

    def call(self, service: str, expect: bool = True) -> str:
        response = self.request(service)
        assert response.success is expect, response.message
        return response.message

    def request(self, service: str) -> Any:
        """The node's Trigger response, once the node has delivered its state (see the class)."""
        client = self.clients[service]
        assert client.wait_for_service(timeout_sec=TIMEOUT), f"service {service} not available"
        wait_for(lambda: self.messages[f"{self.prefix}/state"], TIMEOUT, message="the node's state")
        future = client.call_async(Trigger.Request())
        wait_for(future.done, TIMEOUT, message=f"{service} response")
        return future.result()

    def state(self) -> dict[str, Any]:
        states = self.messages[f"{self.prefix}/state"]
        return json.loads(states[-1].data) if states else {}

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(5)

