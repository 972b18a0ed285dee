"""`excap replay`: an episode's streams played back at their recorded pace onto a CAN bus and/or ROS 2 topics.

- `timeline`: the chosen streams merged by t_ns, read block by block (memory independent of length).
- `scheduler`: emits each sample when due at the chosen rate; pause / resume / stop.
- `can_sink`: recorded frames (all, or only BJM1 / EJM1 commands, or commands re-encoded from /control)
  onto a python-can bus; a dry run unless asked to transmit.
- `ros` (needs rclpy): the streams republished as ROS 2 messages with their recorded stamps.
- `player`: ties a timeline, a scheduler and sinks together; `cli`: the `excap replay` command.

The names below are imported on first use, so that `excap replay --help` (which needs only the scheduler's
defaults) does not load the episode reader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from excap.replay.player import Replay, ReplayOptions, replay_episode
    from excap.replay.scheduler import ReplayStats, Scheduler
    from excap.replay.timeline import Sample, Timeline

_HOMES = {"Replay": "player", "ReplayOptions": "player", "replay_episode": "player", "ReplayStats": "scheduler",
          "Scheduler": "scheduler", "Sample": "timeline", "Timeline": "timeline"}

__all__ = ["Replay", "ReplayOptions", "ReplayStats", "Sample", "Scheduler", "Timeline", "replay_episode"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
