import pytest

from excap.core.step_timer import StepTimer


def test_steps_keep_their_first_order_and_repeated_steps_add_up():
    timer = StepTimer()
    with timer.step("devices"):
        pass
    timer.add("writers", 0.5)
    timer.add("devices", 0.25)
    seconds = timer.seconds
    assert list(seconds) == ["devices", "writers"]
    assert 0.25 <= seconds["devices"] < 0.35 and seconds["writers"] == 0.5
    assert timer.total_s == pytest.approx(sum(seconds.values()))


def test_a_step_that_raises_is_timed_and_the_error_passes():
    timer = StepTimer()
    with pytest.raises(KeyError), timer.step("lookup"):
        raise KeyError("x")
    assert list(timer.seconds) == ["lookup"]
