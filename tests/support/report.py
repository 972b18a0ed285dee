"""Figures measured by tests (fuzz inputs tried, fault trials and their loss), printed at the end of the run.

Tests call `record(section, key, value)`; the root conftest prints every section in pytest's terminal summary
and, when `EXCAP_TEST_REPORT` names a file, writes them there as JSON for BENCHMARKS.md.
"""

import json
import os
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_figures: dict[str, dict[str, Any]] = {}


def record(section: str, key: str, value: Any) -> None:
    """Keep one figure; a later value for the same key replaces the earlier one."""
    with _lock:
        _figures.setdefault(section, {})[key] = value


def add(section: str, key: str, amount: int = 1) -> None:
    """Add to a counter (e.g. the inputs a fuzz target tried)."""
    with _lock:
        figures = _figures.setdefault(section, {})
        figures[key] = figures.get(key, 0) + amount


def figures() -> dict[str, dict[str, Any]]:
    with _lock:
        return {section: dict(values) for section, values in _figures.items()}


def lines() -> list[str]:
    result = []
    for section, values in sorted(figures().items()):
        for key, value in sorted(values.items()):
            result.append(f"{section}: {key} = {json.dumps(value)}")
    return result


def write_if_asked() -> None:
    target = os.environ.get("EXCAP_TEST_REPORT")
    if target:
        Path(target).write_text(json.dumps(figures(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
