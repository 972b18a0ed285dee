"""The episode schema document (`schemas/episode/v<N>.yaml`), loaded once."""

import fnmatch
from functools import cache
from typing import Any

import yaml

from excap.schemas import schema_file

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it: every reader loads this at start


@cache
def load_episode_schema(version: int = 1) -> dict[str, Any]:
    path = schema_file(f"episode/v{version}.yaml")
    if not path.exists():
        raise FileNotFoundError(path)
    schema: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    return schema


def supported_versions() -> list[int]:
    return sorted(int(p.stem[1:]) for p in schema_file("episode").glob("v*.yaml"))


def stream_rule(schema: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The schema entry whose pattern matches a stream path ('*' matches one path segment)."""
    for pattern, rule in schema["streams"].items():
        if len(pattern.split("/")) == len(path.split("/")) and fnmatch.fnmatchcase(path, pattern):
            return pattern, rule
    return None
