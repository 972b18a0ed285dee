"""ROS 2 tests talk over the real middleware: keep them on this host and on a domain of their own."""

import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.support.ros_node import Client

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))


@pytest.fixture
def client() -> Iterator["Client"]:
    """This test process as a ROS node next to the excap_recorder node (rclpy imported only here)."""
    from tests.support.ros_node import Client

    c = Client()
    yield c
    c.close()
