"""Optional parts of excap (pip extras) and the one-line error of a command whose extra is not installed.

The base install is what a station needs: recording, devices, the station page, inspect, validate and replay.
Everything else is an extra named in setup.py; a command that needs one calls `require_extra` before its work,
so that a missing extra is one line naming it, never a traceback halfway through:

    excap: error: 'excap export' needs the exports extra: pip install 'excap[exports]'
"""

from __future__ import annotations

import importlib

from excap.core.errors import MissingExtraError

# The modules each extra provides (their import names): what `require_extra` checks, and what the start-up test
# makes sure `excap --help`, `inspect` and `validate` never import.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "exports": ("pyarrow", "pandas", "av", "skimage"),
    "delivery": ("boto3", "botocore", "pyarrow"),
    "mf4": ("asammdf",),
    "review": ("matplotlib",),
    "fleet": ("psycopg", "ray"),
    "viewers": ("foxglove", "mcap", "mcap_ros2"),
    "ros": ("rclpy",),
}
ALTERNATIVES = {"ros": "or source a ROS 2 distribution's setup.bash"}


def missing_extra(command: str, extra: str) -> MissingExtraError:
    """The error for `excap COMMAND` without `extra` installed."""
    alternative = f" ({ALTERNATIVES[extra]})" if extra in ALTERNATIVES else ""
    return MissingExtraError(f"'excap {command}' needs the {extra} extra: pip install 'excap[{extra}]'{alternative}")


def require_extra(command: str, extra: str, *modules: str) -> None:
    """Import `modules` (default: every module of `extra`); MissingExtraError naming the extra if one fails."""
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}")
    for module in modules or EXTRA_MODULES[extra]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise missing_extra(command, extra) from exc
