"""Which episode stream a ROS 2 topic records to: the station config checks these entries and the ROS node
records with them (no rclpy needed here)."""

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_IMAGE_SUFFIXES = ("image_raw", "image_rect", "image_color", "image", "compressed")


def parse_topic_entry(entry: str, image: bool = False) -> tuple[str, str]:
    """`name=/topic` or `/topic` -> (stream name, topic). Without a name, the topic's path is used
    (for images without a trailing `image_raw`, `compressed`, ...): `/cab/front/image_raw` -> `cab_front`."""
    name, sep, topic = entry.partition("=")
    if not sep:
        topic, name = entry, ""
    topic = topic.strip()
    if not topic:
        raise ValueError(f"topic entry {entry!r}: no topic")
    if not name:
        parts = [p for p in topic.split("/") if p]
        while image and len(parts) > 1 and parts[-1] in _IMAGE_SUFFIXES:
            parts.pop()
        name = "_".join(parts)
    name = _UNSAFE.sub("_", name.strip()).strip("_")
    if not name:
        raise ValueError(f"topic entry {entry!r}: empty stream name")
    return name, topic
