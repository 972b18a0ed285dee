"""`excap replay`: an episode's streams played back at their recorded pace onto a CAN bus and/or ROS 2 topics.

- `timeline`: the chosen streams merged by t_ns, read block by block (memory independent of length).
- `scheduler`: emits each sample when due at the chosen rate; pause / resume / stop.
- `can_sink`: recorded frames (all, or only BJM1 / EJM1 commands, or commands re-encoded from /control)
  onto a python-can bus; a dry run unless asked to transmit.
- `excap.ros.replay_sink` (needs rclpy): the streams republished as ROS 2 messages with their recorded stamps.
- `player`: ties a timeline, a scheduler and sinks together; `excap.cli.replay`: the `excap replay` command.

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.replay.player import Replay, ReplayOptions, replay_episode
    from excap.replay.scheduler import ReplayStats, Scheduler
    from excap.replay.timeline import Sample, Timeline

__all__ = ["Replay", "ReplayOptions", "ReplayStats", "Sample", "Scheduler", "Timeline", "replay_episode"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.replay.player": ["Replay", "ReplayOptions", "replay_episode"],
    "excap.replay.scheduler": ["ReplayStats", "Scheduler"],
    "excap.replay.timeline": ["Sample", "Timeline"],
})
