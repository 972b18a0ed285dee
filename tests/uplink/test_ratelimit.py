"""The bandwidth cap (token bucket, `--max-rate`) and the retry backoff's bounds."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from excap.core.errors import ConfigError
from excap.uplink.ratelimit import TokenBucket, parse_rate
from excap.uplink.retry import RetryPolicy
from tests.support.fuzzing import fuzz_settings, tried


def test_rates_in_words() -> None:
    assert parse_rate("2MB/s") == 2e6 and parse_rate("500KB/s") == 5e5 and parse_rate("1MiB/s") == 1 << 20
    assert parse_rate("250000") == 250000 and parse_rate(" 1.5 mb / s ") == 1.5e6
    for bad in ("fast", "0MB/s", "-1MB/s", "2 parsecs/s", ""):
        with pytest.raises(ConfigError, match="--max-rate"):
            parse_rate(bad)


@fuzz_settings(300)
@given(st.text(max_size=20))
def test_any_rate_text_parses_or_is_a_config_error(text: str) -> None:
    tried("uplink parse_rate")
    with contextlib.suppress(ConfigError):
        assert parse_rate(text) > 0


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate", [1e5, 2e6])
def test_the_bucket_holds_the_average_rate(rate: float) -> None:
    time = FakeTime()
    bucket = TokenBucket(rate, burst=rate / 4, clock=time.clock, sleep=time.sleep)
    total = 0
    for size in [256 * 1024] * 40 + [1000] * 50:
        bucket.take(size)
        total += size
    assert total / rate - 0.25 - 1e-6 <= time.now <= total / rate + 1e-6  # the first burst is free


def test_backoff_is_bounded_and_jittered() -> None:
    policy, rng = RetryPolicy(attempts=8, base_s=0.5, cap_s=15.0), random.Random(1)
    delays = [policy.delay(attempt, rng) for attempt in range(8) for _ in range(50)]
    assert all(0 <= d <= 15.0 for d in delays) and len(set(delays)) == len(delays)
    assert max(policy.delay(0, rng) for _ in range(100)) <= 0.5
