"""Bounded fuzzing with hypothesis: a fixed number of inputs per target, no deadline, counts reported.

`EXCAP_FUZZ_SCALE` multiplies the number of inputs (default 1; CI keeps the default so the suite stays fast,
a longer hunt runs with e.g. `EXCAP_FUZZ_SCALE=20`).
"""

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

from tests.support import report

F = TypeVar("F", bound=Callable[..., Any])

SCALE = float(os.environ.get("EXCAP_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int = 200) -> Callable[[F], F]:
    """hypothesis settings for a fuzz target: `examples` inputs (times the scale), no per-input deadline."""
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture])


def tried(target: str) -> None:
    """Count one input for `target`; the totals are printed at the end of the run."""
    report.add("fuzz inputs", target)
