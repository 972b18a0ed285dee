"""Bounded, jittered exponential backoff around one object-store call (connection errors, timeouts, 5xx)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8  # tries of one call, the first included
    base_s: float = 0.5
    cap_s: float = 15.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^attempt)]."""
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** attempt)))


def transient(exc: BaseException) -> bool:
    """Whether a botocore error is worth retrying: no connection, timeouts, throttling, 5xx."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, ReadTimeoutError

    if isinstance(exc, (ConnectionError, HTTPClientError, ReadTimeoutError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return status >= 500 or code in ("SlowDown", "RequestTimeout", "Throttling", "InternalError",
                                         "ServiceUnavailable")
    return False


def with_retries(call: Callable[[], T], policy: RetryPolicy, on_retry: Callable[[BaseException, float], None],
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, retried on transient errors up to `policy.attempts` times; the last error is raised."""
    rng = rng or random.Random()
    for attempt in range(policy.attempts):
        try:
            return call()
        except Exception as exc:
            if not transient(exc) or attempt == policy.attempts - 1:
                raise
            delay = policy.delay(attempt, rng)
            on_retry(exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")
