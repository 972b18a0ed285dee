# ruff: noqa: E402  (rclpy is imported once the requirement check has passed)
"""`excap node --sim --foxglove PORT`: the node's station streams to a Foxglove WebSocket client over loopback."""

import re
import time
from pathlib import Path

import pytest

from tests.support.requirements import require_ros

require_ros()

from tests.support.foxglove_client import foxglove_client
from tests.support.ros_node import TIMEOUT, finish, spawn

pytestmark = pytest.mark.slow


def test_the_node_serves_its_live_streams_to_foxglove(tmp_path: Path) -> None:
    node = spawn("-m", "excap", "node", "--sim", "--out", str(tmp_path), "--foxglove", "0", "--ros-args",
                 "-p", "cameras:=1", "-p", "width:=160", "-p", "height:=120", "-p", "fps:=10.0")
    lines: list[str] = []
    try:
        assert node.stdout is not None
        pattern = re.compile(r"^foxglove live view: (ws://127\.0\.0\.1:\d+)$")
        found = None
        deadline = time.monotonic() + TIMEOUT
        while found is None and time.monotonic() < deadline and node.poll() is None:
            lines.append(node.stdout.readline().rstrip("\n"))
            found = pattern.match(lines[-1])
        assert found is not None, lines
        topics = ["/excap/cameras/side", "/excap/joy/operator", "/excap/commands", "/excap/health"]
        with foxglove_client(found.group(1)) as client:
            client.receive_until(lambda: all(t in client.channels for t in topics), TIMEOUT, "the node's channels")
            client.subscribe(topics)
            client.receive_until(lambda: all(client.messages[t] for t in topics), TIMEOUT, "the node's messages")
        assert client.messages["/excap/joy/operator"][-1].json()["device"] == "operator"
    finally:
        output = finish(node)
    assert node.returncode == 0, "\n".join(lines) + output
