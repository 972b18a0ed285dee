"""The topics excap publishes: one table for the live node (`excap node`) and the replay (`excap replay --ros`).

Names and message types only (no rclpy here): `excap.ros.node` and `excap.ros.replay_sink` build their
publishers from these functions, so a replay of an episode publishes what the node published while recording it.

| topic | type | node | replay |
|---|---|---|---|
| `<prefix>/joy/<device>` | sensor_msgs/msg/Joy | each station joystick | each `joystick/<device>` stream |
| `<prefix>/commands` | sensor_msgs/msg/JointState | the command link's commands | `/control` |
| `<prefix>/joint_states` | sensor_msgs/msg/JointState | machine joints, 50 Hz | joints decoded from CAN, 50 Hz |
| `<prefix>/cameras/<name>/compressed` | sensor_msgs/msg/CompressedImage | each camera | each `cameras/<name>` |
| `/diagnostics` | diagnostic_msgs/msg/DiagnosticArray | station health, 1 Hz | replay progress, 1 Hz |
| `<prefix>/can/<ch>/decoded/<Msg>` | sensor_msgs/msg/JointState | | decoded CAN messages (replay only) |
| `<prefix>/events` | std_msgs/msg/String | | recorded events, JSON (replay only) |
| `/clock` | rosgraph_msgs/msg/Clock | | recorded time (replay `--clock`) |
"""

import re
from dataclasses import dataclass

JOY = "sensor_msgs/msg/Joy"
JOINT_STATE = "sensor_msgs/msg/JointState"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
STRING = "std_msgs/msg/String"
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"

DIAGNOSTICS = "/diagnostics"
CLOCK = "/clock"
DEFAULT_PREFIX = "/excap"
JOINT_STATE_PERIOD_S = 0.02  # 50 Hz
DIAGNOSTICS_PERIOD_S = 1.0
CLOCK_PERIOD_NS = 10_000_000  # /clock every 10 ms of recorded time (100 Hz at rate 1)

_UNSAFE = re.compile(r"[^A-Za-z0-9_/]+")


@dataclass(frozen=True)
class Topic:
    name: str
    type: str  # "package/msg/Type", as `ros2 topic list -t` shows it


def _clean(prefix: str) -> str:
    stripped = prefix.strip("/")
    return "/" + stripped if stripped else ""


def _topic(name: str, type_name: str) -> Topic:
    return Topic(_UNSAFE.sub("_", name), type_name)


def joy(prefix: str, device: str) -> Topic:
    return _topic(f"{_clean(prefix)}/joy/{device}", JOY)


def commands(prefix: str) -> Topic:
    return _topic(f"{_clean(prefix)}/commands", JOINT_STATE)


def joint_states(prefix: str) -> Topic:
    return _topic(f"{_clean(prefix)}/joint_states", JOINT_STATE)


def camera(prefix: str, name: str) -> Topic:
    return _topic(f"{_clean(prefix)}/cameras/{name}/compressed", COMPRESSED_IMAGE)


def can_decoded(prefix: str, channel: str, message: str) -> Topic:
    return _topic(f"{_clean(prefix)}/can/{channel}/decoded/{message}", JOINT_STATE)


def events(prefix: str) -> Topic:
    return _topic(f"{_clean(prefix)}/events", STRING)


def diagnostics() -> Topic:
    return Topic(DIAGNOSTICS, DIAGNOSTIC_ARRAY)


def clock() -> Topic:
    return Topic(CLOCK, CLOCK_TYPE)


def for_stream(path: str, prefix: str = DEFAULT_PREFIX) -> Topic | None:
    """The topic an episode stream is replayed on, or None for streams not published (raw CAN, sensors)."""
    parts = path.split("/")
    if path == "control":
        return commands(prefix)
    if path == "events":
        return events(prefix)
    if parts[0] == "joystick" and len(parts) == 2:
        return joy(prefix, parts[1])
    if parts[0] == "cameras" and len(parts) == 2:
        return camera(prefix, parts[1])
    if parts[0] == "can" and len(parts) == 4 and parts[2] == "decoded":
        return can_decoded(prefix, parts[1], parts[3])
    return None
