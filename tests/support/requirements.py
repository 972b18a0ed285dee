"""What a test needs from its environment, decided in one place: skip where it may be missing, fail in CI.

A fresh clone may lack the real J1939 recordings (`../shared/data/can`), Chromium, the ROS 2 wheels or
colcon; the tests that need them skip with a message saying what to install. With `EXCAP_REQUIRE_ALL=1`
(set by `.ci/run`) every requirement is mandatory: the same calls fail the test instead, and the skip policy
(`tests.support.skip_policy`) fails the run if any test skipped for a reason not in `ALLOWED_SKIPS`.
"""

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from tests.support.paths import SHARED_CAN

REQUIRE_ALL_ENV = "EXCAP_REQUIRE_ALL"

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
COLCON = Path(sys.executable).parent / "colcon"

#: The LeRobot compatibility tests run in their own environment (`.ci/lerobot-compat`, which fails if they
#: skip there); in the main venv they skip by design.
LEROBOT_MISSING = "lerobot is not installed here: bash .ci/lerobot-compat runs these tests in their own venv"

#: (node id prefix, reason prefix) of the only skips allowed under EXCAP_REQUIRE_ALL=1.
ALLOWED_SKIPS: tuple[tuple[str, str], ...] = (
    ("tests/compat/test_lerobot_compat.py", LEROBOT_MISSING),
)


def require_all() -> bool:
    """True when every requirement is mandatory (CI)."""
    return os.environ.get(REQUIRE_ALL_ENV, "").strip() not in ("", "0")


def missing(reason: str, module_level: bool = False) -> NoReturn:
    """Skip the test (or the whole module) for `reason`; under EXCAP_REQUIRE_ALL=1 fail it instead."""
    if require_all():
        pytest.fail(f"{reason} [{REQUIRE_ALL_ENV}=1: this is required]", pytrace=False)
    pytest.skip(reason, allow_module_level=module_level)


def require_shared_data(folder: Path = SHARED_CAN) -> Path:
    """The folder of real J1939 recordings (clone the repository beside `../shared`)."""
    if not folder.is_dir():
        missing(f"real J1939 recordings not found: {folder} is absent")
    return folder


def require_chromium(chromium: Path = CHROMIUM, driver: Path = CHROMEDRIVER) -> tuple[Path, Path]:
    """Debian's headless Chromium and its WebDriver."""
    if not chromium.exists() or not driver.exists():
        missing(f"headless browser tests need Debian's chromium and chromium-driver ({chromium}, {driver})")
    return chromium, driver


def require_ros(module_level: bool = True) -> None:
    """rclpy and the message packages (the ROS 2 pip wheels, or a sourced ROS 2 distribution)."""
    from excap.ros.env import rclpy_available

    if not rclpy_available():
        missing("rclpy cannot be imported: install the ROS 2 wheels (pip install -e '.[ros]') or source a ROS 2 "
                "distribution", module_level=module_level)


def require_colcon(colcon: Path = COLCON) -> Path:
    """colcon, from the `dev` extra."""
    if not colcon.exists():
        missing(f"colcon is not installed ({colcon}): pip install -e '.[dev]'")
    return colcon


def require_lerobot() -> ModuleType:
    """LeRobot's dataset module; always a skip when missing (see LEROBOT_MISSING), even in CI."""
    try:
        return importlib.import_module("lerobot.datasets.lerobot_dataset")
    except ImportError as exc:
        pytest.skip(f"{LEROBOT_MISSING} ({exc})", allow_module_level=True)


def skip_allowed(nodeid: str, reason: str) -> bool:
    return any(nodeid.startswith(prefix) and reason.startswith(allowed) for prefix, allowed in ALLOWED_SKIPS)
