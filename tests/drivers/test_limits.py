"""The ranges of configurable numbers: what is a number, what is inside, and how a refusal reads."""

import math

import pytest

from excap.core.errors import ConfigError
from excap.drivers.limits import (
    CAMERA_FPS,
    COMMAND_RATE_HZ,
    SOURCE_ADDRESS,
    STALE_TIMEOUT_MS,
    Limits,
    as_number,
    check_sign,
    shown,
    sign_problem,
)


@pytest.mark.parametrize(("value", "integer", "expected"), [
    (5, False, 5), (5, True, 5), (2.5, False, 2.5), (2.0, True, 2), (2.5, True, 2.5),
    ("1e3", False, 1000.0), (" 50 ", False, 50.0), ("0x2C", True, 44), ("0x2C", False, None), ("44", True, 44),
    ("nan", False, math.nan), ("fast", False, None), ("", False, None),
    (True, False, None), (False, True, None), (None, False, None), ([1], False, None), ({"a": 1}, True, None),
])
def test_as_number(value, integer, expected):
    result = as_number(value, integer)
    if isinstance(expected, float) and math.isnan(expected):
        assert isinstance(result, float) and math.isnan(result)
    else:
        assert result == expected and type(result) is type(expected)


def test_bounds_are_inclusive_and_the_low_one_can_be_open():
    assert [COMMAND_RATE_HZ.accept(v) for v in (1, 200, 0.999, 200.001, 50)] == [1.0, 200.0, None, None, 50.0]
    assert [CAMERA_FPS.accept(v) for v in (0, 1e-9, 240, 240.5)] == [None, 1e-9, 240.0, None]
    assert [SOURCE_ADDRESS.accept(v) for v in (0, 253, 254, -1, 43.0, 43.5, "0xFD")] == [0, 253, None, None, 43,
                                                                                        None, 253]
    assert isinstance(COMMAND_RATE_HZ.accept(50), float) and isinstance(SOURCE_ADDRESS.accept(43.0), int)
    for bad in (math.nan, math.inf, -math.inf, "1e400", 10**400, "nan", None, True, [], "fast"):
        assert COMMAND_RATE_HZ.accept(bad) is None, bad


@pytest.mark.parametrize(("limits", "value", "message"), [
    (STALE_TIMEOUT_MS, math.nan, "must be a finite number between 10 and 1000 (got nan)"),
    (STALE_TIMEOUT_MS, "1e400", "must be a finite number between 10 and 1000 (got 1e400)"),
    (STALE_TIMEOUT_MS, -math.inf, "must be a finite number between 10 and 1000 (got -inf)"),
    (STALE_TIMEOUT_MS, 0.5, "must be a finite number between 10 and 1000 (got 0.5)"),
    (CAMERA_FPS, "fast", "must be a finite number above 0 and at most 240 (got 'fast')"),
    (SOURCE_ADDRESS, 254, "must be a whole number between 0 and 253 (got 254)"),
    (SOURCE_ADDRESS, True, "must be a whole number between 0 and 253 (got true)"),
    (SOURCE_ADDRESS, 10**20, "must be a whole number between 0 and 253 (got a huge number)"),
    (Limits(0.05, 60), None, "must be a finite number between 0.05 and 60 (got nothing)"),
    (Limits(-1, 1), [1, 2], "must be a finite number between -1 and 1 (got a list)"),
    (Limits(-1, 1), {"x": 1}, "must be a finite number between -1 and 1 (got a mapping)"),
    (Limits(-1, 1), "x" * 50, f"must be a finite number between -1 and 1 (got '{'x' * 37}...')"),
])
def test_refusals_read_as_one_line(limits, value, message):
    assert limits.message(value) == message
    with pytest.raises(ConfigError) as caught:
        limits.check(value, "command.key")
    assert str(caught.value) == f"command.key: {message}"


def test_check_returns_the_number_and_the_json_schema_states_the_range():
    assert STALE_TIMEOUT_MS.check("100", "k") == 100.0 and SOURCE_ADDRESS.check("0x2B", "k") == 43
    assert COMMAND_RATE_HZ.json_schema() == {"type": "number", "minimum": 1, "maximum": 200}
    assert CAMERA_FPS.json_schema() == {"type": "number", "exclusiveMinimum": 0, "maximum": 240}
    assert SOURCE_ADDRESS.json_schema() == {"type": "integer", "minimum": 0, "maximum": 253}
    assert Limits(0.01, 1.0).json_schema() == {"type": "number", "minimum": 0.01, "maximum": 1.0}


def test_signs_are_exactly_plus_or_minus_one():
    assert [sign_problem(v) for v in (1, -1, 1.0, "-1")] == [None] * 4
    for bad in (0, 0.5, -2, math.nan, math.inf, "up", None, True):
        assert sign_problem(bad) == f"must be +1 or -1 (got {shown(bad)})"
    assert check_sign(-1, "k") == -1.0 and isinstance(check_sign(1, "k"), float)
    with pytest.raises(ConfigError, match=r"^pattern\.sign: must be \+1 or -1 \(got 0\)$"):
        check_sign(0, "pattern.sign")


def test_shown():
    assert [shown(v) for v in (math.nan, -math.inf, 0.25, 7, False, "a\nb", b"x", (1,))] == [
        "nan", "-inf", "0.25", "7", "false", "'a\\nb'", "bytes", "a list"]


def test_shown_bounds_and_figures():
    assert shown(10**15 - 1) == "999999999999999" and shown(10**15) == "a huge number"
    assert shown(5 * 10**15) == "a huge number" and shown(-(10**15)) == "a huge number"
    assert shown("x" * 40) == repr("x" * 40) and shown("x" * 41) == repr("x" * 37 + "...")
    assert Limits(0, 1e15).describe() == "a finite number between 0 and 1000000000000000.0"
    assert Limits(0, 1e15 - 1).describe() == "a finite number between 0 and 999999999999999"
    assert SOURCE_ADDRESS.message("0x1FF") == "must be a whole number between 0 and 253 (got 0x1FF)"
    schema = Limits(1.0, 12.0, integer=True).json_schema()
    assert schema == {"type": "integer", "minimum": 1, "maximum": 12}
    assert all(type(schema[key]) is int for key in ("minimum", "maximum"))
