"""Waiting on a condition with a timeout, instead of sleeping."""

import time
from collections.abc import Callable

import pytest


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.02,
             message: str = "condition", seen: Callable[[], object] | None = None) -> object:
    """Poll until `condition()` is truthy; fail the test after `timeout` seconds (saying what `seen()` shows
    then, where given: what stood in the way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    shown = "" if seen is None else f" (seen instead: {seen()!r})"
    pytest.fail(f"timed out after {timeout} s waiting for {message}{shown}")
