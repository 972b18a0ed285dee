"""The node's parameters: names, defaults, and the station file that can set them.

A station file is YAML with `schema: excap.ros_station` and any of the parameters below as keys
(see docs/ros2.md). Its values replace the built-in defaults; parameters given on the command line
or in a launch file (`-p name:=value`) still win.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from capture_node.errors import ConfigError
from drivers.profiles import DEFAULT_PROFILE

STATION_SCHEMA = "excap.ros_station"


@dataclass
class NodeSettings:
    """Every ROS parameter of `excap_recorder` (the station file path is `station_config`)."""

    sim: bool = False
    out_dir: str = "episodes"
    operator: str = "anonymous"
    certification: str = ""
    task: str = ""
    site: str = ""
    notes: str = ""
    machine_id: str = "machine-01"
    profile: str = DEFAULT_PROFILE
    pattern: str = ""  # "" = the profile's default; iso | sae
    cameras: int = 2  # simulated cameras (sim mode)
    width: int = 640
    height: int = 480
    fps: float = 30.0
    jpeg_quality: int = 90
    seed: int = 0
    joy_topics: list[str] = field(default_factory=list)  # "name=/topic" or "/topic"
    image_topics: list[str] = field(default_factory=list)
    compressed_image_topics: list[str] = field(default_factory=list)
    command_topic: str = ""  # sensor_msgs/JointState, names = machine functions
    publish_prefix: str = "/excap"
    diagnostics_period_s: float = 1.0
    stale_after_s: float = 2.0
    min_free_gb: float = 2.0
    auto_start: bool = False

    @classmethod
    def parameter_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        settings = cls()
        return {name: getattr(settings, name) for name in cls.parameter_names()}


def load_station_file(path: Path) -> dict[str, Any]:
    """Parameter values from a station file; one ConfigError listing every problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("schema") != STATION_SCHEMA:
        raise ConfigError(f"{path}: not an excap ROS station file (expected schema: {STATION_SCHEMA})")
    defaults = NodeSettings.defaults()
    values: dict[str, Any] = {}
    problems = []
    for key, value in data.items():
        if key == "schema":
            continue
        if key not in defaults:
            problems.append(f"{path}: {key}: unknown key")
            continue
        default = defaults[key]
        if isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(f"{path}: {key}: should be a list of strings")
                continue
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{path}: {key}: should be true or false")
                continue
        elif isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, type(default)) or isinstance(value, bool):
            problems.append(f"{path}: {key}: should be {type(default).__name__}")
            continue
        values[key] = value
    if "out_dir" in values and not Path(values["out_dir"]).is_absolute():
        values["out_dir"] = str((path.parent / values["out_dir"]).resolve())
    if problems:
        raise ConfigError("\n".join(problems))
    return values
