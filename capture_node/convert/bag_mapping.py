"""The mapping file of `excap convert BAG.mcap --to episode --map MAPPING.yaml`: which bag topic is which stream.

```yaml
profile: excavator_20t          # the machine's profile: kind, model, /control functions, DBCs decoding CAN frames
metadata: {operator_id: op-17, site: quarry-north, machine_id: exc-01}   # optional episode metadata
joysticks:                      # sensor_msgs/msg/Joy -> /joystick/<name>
  operator: /excap/joy/operator
cameras:                        # sensor_msgs/msg/CompressedImage (JPEG kept) or Image -> /cameras/<name>
  side: /excap/cameras/side/compressed
can:                            # can_msgs/msg/Frame or ros2_socketcan_msgs/msg/FdFrame -> /can/<name>
  can0: /excap/can/can0
commands: /excap/commands       # sensor_msgs/msg/JointState: name = machine functions, position = commands -> /control
events: /excap/events           # diagnostic_msgs/msg/DiagnosticArray written by excap -> /events
```

Every key but `profile` is optional. Mistakes are ConfigError lines `FILE: key: message`.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from excap.convert.can_logs import check_metadata
from excap.core.errors import ConfigError
from excap.core.yaml_files import load_yaml

KEYS = ("profile", "metadata", "joysticks", "cameras", "can", "commands", "events")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOPIC = re.compile(r"/?[A-Za-z_~{][A-Za-z0-9_/{}~]*")


@dataclass(frozen=True)
class BagMapping:
    profile: str
    metadata: dict[str, str] = field(default_factory=dict)
    joysticks: dict[str, str] = field(default_factory=dict)  # stream name -> topic
    cameras: dict[str, str] = field(default_factory=dict)
    can: dict[str, str] = field(default_factory=dict)
    commands: str = ""
    events: str = ""

    def topics(self) -> dict[str, tuple[str, str]]:
        """Topic -> (stream kind, stream name) of every mapped topic."""
        mapped: dict[str, tuple[str, str]] = {}
        for kind, entries in (("joystick", self.joysticks), ("camera", self.cameras), ("can", self.can)):
            mapped |= {topic: (kind, name) for name, topic in entries.items()}
        if self.commands:
            mapped[self.commands] = ("commands", "control")
        if self.events:
            mapped[self.events] = ("events", "events")
        return mapped


def _topic(source: Path, key: str, value: Any) -> str:
    if not isinstance(value, str) or not _TOPIC.fullmatch(value):
        raise ConfigError(f"{source}: {key}: expected a topic name like /camera/image, not {value!r}")
    return value if value.startswith("/") else f"/{value}"


def _streams(source: Path, key: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {key}: expected a mapping of stream name to topic")
    streams: dict[str, str] = {}
    for name, topic in value.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"{source}: {key}: stream name {name!r}: use letters, digits, '_', '.' or '-'")
        streams[name] = _topic(source, f"{key}.{name}", topic)
    return streams


def parse_mapping(data: Any, source: Path) -> BagMapping:
    """A mapping document checked key by key; ConfigError `source: key: message` at the first mistake."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {', '.join(KEYS)}")
    unknown = sorted(str(k) if str(k).isprintable() else repr(k) for k in data if k not in KEYS)
    if unknown:
        raise ConfigError(f"{source}: {unknown[0]}: unknown key (known: {', '.join(KEYS)})")
    profile = data.get("profile")
    if not isinstance(profile, str) or not profile:
        raise ConfigError(f"{source}: profile: required, the machine's profile name or YAML file")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str | int | float)
                                                 for k, v in metadata.items()):
        raise ConfigError(f"{source}: metadata: expected a mapping of episode metadata keys to text")
    try:
        check_metadata({k: str(v) for k, v in metadata.items()})
    except ConfigError as exc:
        raise ConfigError(f"{source}: metadata: {' '.join(str(exc).split())}") from None
    mapping = BagMapping(
        profile=profile,
        metadata={k: str(v) for k, v in metadata.items()},
        joysticks=_streams(source, "joysticks", data.get("joysticks")),
        cameras=_streams(source, "cameras", data.get("cameras")),
        can=_streams(source, "can", data.get("can")),
        commands=_topic(source, "commands", data["commands"]) if data.get("commands") is not None else "",
        events=_topic(source, "events", data["events"]) if data.get("events") is not None else "",
    )
    seen: dict[str, str] = {}
    for key, entries in (("joysticks", mapping.joysticks), ("cameras", mapping.cameras), ("can", mapping.can),
                         ("commands", {"": mapping.commands}), ("events", {"": mapping.events})):
        for name, topic in entries.items():
            if not topic:
                continue
            where = f"{key}.{name}" if name else key
            if topic in seen:
                raise ConfigError(f"{source}: {where}: topic {topic} is already mapped by {seen[topic]}")
            seen[topic] = where
    if not seen:
        raise ConfigError(f"{source}: maps no topic: name at least one of joysticks, cameras, can, commands")
    return mapping


def load_mapping(path: Path) -> BagMapping:
    return parse_mapping(load_yaml(path, "bag mapping"), path)


__all__ = ["BagMapping", "load_mapping", "parse_mapping"]
