"""Fixtures and pytest hooks only; shared helpers live in tests/support (importable modules)."""

import os
from pathlib import Path

import pytest

from tests.support import report, skip_policy

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

# Shared fixtures: a recorded folder of episodes with its registry, a running simulated station, and recordings of
# the simulated wheel loader.
pytest_plugins = ["tests.support.recorded_folder", "tests.support.station", "tests.support.station_devices",
                  "tests.support.loader_episodes", "tests.support.postgres", "tests.support.seaweedfs",
                  "tests.support.ray_cluster", "tests.support.fleet_folder"]


@pytest.fixture(scope="session")
def sim_episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 4-second simulated recording, shared by read-only tests."""
    from excap.station.sim import SimSessionOptions, run_sim_session

    out = tmp_path_factory.mktemp("sim_episode")
    return run_sim_session(SimSessionOptions(out_dir=out, duration_s=4.0, cameras=2, width=320, height=240,
                                             fps=15.0))


def pytest_configure(config: pytest.Config) -> None:
    """Under EXCAP_REQUIRE_ALL=1 (CI) a skip not on the allow-list fails the run (tests/support/skip_policy.py)."""
    skip_policy.register(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures tests measured (fuzz inputs tried, fault trials and losses)."""
    lines = report.lines()
    if lines:
        terminalreporter.section("measured by the tests")
        for line in lines:
            terminalreporter.write_line(line)
    report.write_if_asked()
