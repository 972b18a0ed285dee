"""The simulator's truth stamps: off by default, bounded when on, and the matchers that pair recorded rows with
them."""

import threading

import numpy as np
import pytest

from excap.drivers.sim import truth


def stamps(keys: list, start_ns: int = 1_000) -> list[truth.TruthStamp]:
    return [truth.TruthStamp(truth.CAN, "machine", start_ns + 10 * i, key) for i, key in enumerate(keys)]


def test_no_log_unless_switched_on_and_only_one_at_a_time() -> None:
    assert truth.active() is None
    with truth.truth_log(capacity=10) as log:
        assert truth.active() is log
        with pytest.raises(RuntimeError, match="already switched on"), truth.truth_log():
            pass
        assert truth.active() is log
    assert truth.active() is None


def test_log_keeps_the_newest_stamps_and_counts_the_overwritten() -> None:
    log = truth.TruthLog(capacity=100)
    threads = [threading.Thread(target=lambda n=n: [log.add(truth.JOYSTICK, f"j{n}", i, i) for i in range(60)])
               for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(log) == 100 and log.overwritten == 80
    assert len(log.stamps(truth.JOYSTICK)) == 100 and log.stamps(truth.CAMERA) == []
    with pytest.raises(ValueError, match="at least 1"):
        truth.TruthLog(capacity=0)


def test_match_in_order_anchors_on_the_sequence_and_passes_over_stamps_without_rows() -> None:
    # the same key repeats (a CAN frame whose data does not change): only the sequence tells them apart
    keys = ["a", "b", "a", "b", "c", "a", "b", "d", "a", "b"]
    log = stamps(keys)
    rows = [2, 3, 4, 6, 7, 8]  # recording began at stamp 2; stamp 5 was lost
    recorded = [log[i].t_ns + 3 for i in rows]
    matched = truth.match_in_order(log, [keys[i] for i in rows], recorded, anchor=3)
    assert matched.unmatched == 0
    assert matched.truth_ns.tolist() == [log[i].t_ns for i in rows]
    assert np.allclose(matched.errors_ms, 3e-6)


def test_match_in_order_counts_rows_no_stamp_explains() -> None:
    log = stamps(["a", "b", "c"])
    matched = truth.match_in_order(log, ["a", "b", "x", "c"], [1, 2, 3, 4], anchor=2)
    assert matched.unmatched == 1 and matched.recorded_ns.tolist() == [1, 2, 4]
    assert truth.match_in_order(log, ["z"], [5]).unmatched == 1
    assert truth.match_in_order(log, [], []).recorded_ns.size == 0


def test_match_by_key() -> None:
    log = [truth.TruthStamp(truth.CAMERA, "side", 100 * i, i * 33) for i in range(5)]
    matched = truth.match_by_key(log, [33, 66, 999], [150, 260, 300])
    assert matched.unmatched == 1
    assert matched.recorded_ns.tolist() == [150, 260] and matched.truth_ns.tolist() == [100, 200]
