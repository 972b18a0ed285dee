"""Button gestures -> station actions: taps, holds, chords, ladders of holds on the same buttons, cancellation."""

import pytest

from excap.core.errors import ConfigError
from excap.drivers.machine.profiles import load_profile
from excap.station.bindings import Gestures

BINDINGS = load_profile("excavator_20t").station_bindings


def play(gestures: Gestures, script: list[tuple[float, set[str]]]) -> list[tuple[float, str]]:
    """Feed (time, pressed) steps, ticking every 10 ms in between; the actions fired, with their time."""
    fired = []
    for (t0, pressed), (t1, _next) in zip(script, [*script[1:], (script[-1][0] + 0.01, set())], strict=True):
        for tick in range(round(t0 * 100), round(t1 * 100)):
            fired += [(tick / 100, action) for action in gestures.update(tick / 100, pressed)]
    return fired


def test_tap_marks_and_long_press_starts_or_stops():
    assert play(Gestures(BINDINGS), [(0.0, {"marker"}), (0.2, set())]) == [(0.2, "marker")]
    fired = play(Gestures(BINDINGS), [(0.0, {"marker"}), (2.0, set())])
    assert fired == [(1.0, "start_stop")]  # fires as soon as held 1 s; the release adds nothing


def test_chord_released_after_half_a_second_is_success_and_held_three_seconds_discards():
    fired = play(Gestures(BINDINGS), [(0.0, {"horn"}), (0.05, {"horn", "marker"}), (1.0, {"horn"}), (1.1, set())])
    assert fired == [(1.1, "success")]
    fired = play(Gestures(BINDINGS), [(0.0, {"horn", "marker"}), (3.5, set())])
    assert fired == [(3.0, "discard")]
    assert play(Gestures(BINDINGS), [(0.0, {"horn", "marker"}), (0.3, set())]) == []  # too short: nothing


def test_buttons_outside_the_gesture_make_it_ambiguous_and_enable_is_ignored():
    # marker, then horn joins briefly, then marker alone again: neither a marker nor a chord
    assert play(Gestures(BINDINGS), [(0.0, {"marker"}), (0.1, {"marker", "horn"}), (0.2, {"marker"}),
                                     (0.3, set())]) == []
    # the enable (deadman) button is no part of any gesture
    assert play(Gestures(BINDINGS), [(0.0, {"enable"}), (0.5, {"enable", "marker"}), (0.7, {"enable"})]) == \
        [(0.7, "marker")]
    assert play(Gestures(BINDINGS), [(0.0, {"horn"}), (2.0, set())]) == [(1.5, "failure")]


def test_cancelled_gesture_fires_nothing_and_pending_says_what_release_would_do():
    gestures = Gestures(BINDINGS)
    gestures.update(0.0, {"horn", "marker"})
    gestures.update(0.8, {"horn", "marker"})
    pending = gestures.pending(0.8)
    assert pending.on_release == "success" and pending.next_action == "discard"
    assert pending.next_in_s == pytest.approx(2.2)
    gestures.cancel()
    assert gestures.update(0.9, set()) == [] and gestures.pending(0.9) is None


def test_profile_refuses_bindings_on_the_enable_or_function_buttons(tmp_path):
    source = load_profile("wheel_loader_20t").source.read_text()
    for button in ("enable", "fnr_forward"):
        path = tmp_path / f"loader_{button}.yaml"
        path.write_text(source.replace("failure: {buttons: [horn], hold_s: 1.5}",
                                       f"failure: {{buttons: [{button}], hold_s: 1.5}}"))
        with pytest.raises(ConfigError, match="drives the machine"):
            load_profile(path)
    path = tmp_path / "loader_unknown.yaml"
    path.write_text(source.replace("failure: {buttons", "explode: {buttons"))
    with pytest.raises(ConfigError, match="unknown action"):
        load_profile(path)
