import itertools
import math
import threading
import uuid

import can
import pytest

from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.machine.command_link import CommandLink, CommandLinkConfig, LinkState, OperatorInput
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import load_profile
from tests.support.waiting import wait_for

MS = 1_000_000
ENABLE = (1, 0, 0)
RELEASED = (0, 0, 0)
CENTRED = (0.0,) * 6
BOOM_UP = (0.0, 0.0, 0.0, -0.8, 0.0, 0.0)  # ISO: right stick pulled back


@pytest.fixture
def link_and_events():
    profile = load_profile()
    events: list[tuple[str, int, dict]] = []
    commands: list[tuple[int, tuple, bool]] = []
    link = CommandLink(CommandLinkConfig(rate_hz=50, stale_timeout_s=0.1), CommandMapper(profile, "iso"),
                       profile.cab_joysticks, on_command=lambda t, v, e: commands.append((t, v, e)),
                       on_event=lambda kind, t, detail: events.append((kind, t, detail)))
    return link, events, commands


def boom(values):
    return values[0]


def test_enable_from_neutral_then_commands_flow(link_and_events):
    link, events, _ = link_and_events
    assert link.tick(0) == ((0.0,) * 6, False)  # no input yet: disabled, silently
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    assert link.tick(2 * MS)[1] is True and link.state == LinkState.ACTIVE
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 20 * MS))
    values, enabled = link.tick(21 * MS)
    assert enabled and boom(values) > 0.5
    assert events == []


def test_enable_with_sticks_off_centre_is_refused(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 1 * MS))
    assert link.tick(2 * MS) == ((0.0,) * 6, False)
    assert [e[0] for e in events] == ["enable_refused"]
    link.set_input(OperatorInput(CENTRED, ENABLE, 3 * MS))
    assert link.tick(4 * MS)[1] is True


def test_stale_input_neutralises_on_the_first_period_past_the_timeout(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 0))
    link.tick(1 * MS)
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 10 * MS))
    assert link.tick(100 * MS)[1] is True  # 90 ms old: still fresh
    assert link.tick(110 * MS)[1] is True  # exactly at the timeout
    assert link.tick(111 * MS) == ((0.0,) * 6, False)  # first decision past it: neutral
    assert events[-1][0] == "neutralised" and "stale" in events[-1][2]["reason"]


@pytest.mark.parametrize("bad_axes,reason", [
    ((0.0, 0.0, 0.0, math.nan, 0.0, 0.0), "axis out of range: right_y"),
    ((1.3, 0.0, 0.0, 0.0, 0.0, 0.0), "axis out of range: left_x"),
])
def test_out_of_range_neutralises(link_and_events, bad_axes, reason):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 0))
    link.tick(1 * MS)
    link.set_input(OperatorInput(bad_axes, ENABLE, 2 * MS))
    assert link.tick(3 * MS) == ((0.0,) * 6, False)
    assert events[-1] == ("neutralised", 3 * MS, {"reason": reason})


def test_recovery_only_after_re_enable_from_neutral(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 0))
    link.tick(1 * MS)
    link.input_lost("joystick unplugged", t_ns=1 * MS + 1)
    assert link.tick(2 * MS)[1] is False and link.state == LinkState.NEUTRALISED
    # Input returns with enable still held and the stick deflected: stays neutral.
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 3 * MS))
    assert link.tick(4 * MS)[1] is False
    # Still held, now centred: not enough, enable must be released first.
    link.set_input(OperatorInput(CENTRED, ENABLE, 5 * MS))
    assert link.tick(6 * MS)[1] is False and not link.awaiting_enable
    link.set_input(OperatorInput(CENTRED, RELEASED, 7 * MS))
    assert link.tick(8 * MS)[1] is False and link.awaiting_enable
    # Re-enabled with the sticks deflected: refused.
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 9 * MS))
    assert link.tick(10 * MS)[1] is False
    link.set_input(OperatorInput(CENTRED, ENABLE, 11 * MS))
    assert link.tick(12 * MS)[1] is True and link.state == LinkState.ACTIVE and not link.awaiting_enable
    kinds = [e[0] for e in events]
    assert kinds == ["neutralised", "command_restored"]
    assert events[0][2] == {"reason": "input lost: joystick unplugged"}


def test_on_a_real_bus_the_first_frame_after_a_loss_is_neutral():
    """Threads and a python-can virtual bus: the machine side sees neutral right after the timeout.

    Each frame carries the time the link decided it (its bus timestamp, as a stamping interface would carry the
    send time): the receiving thread may read a frame decided just before the timeout only after it.
    """
    profile = load_profile()
    channel = f"excap-test-{uuid.uuid4().hex}"
    station = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    machine = can.Bus(interface="virtual", channel=channel)
    receiver = CabJoystickReceiver(profile.cab_joysticks, profile.functions)
    received: list[tuple[int, tuple, bool]] = []
    lock = threading.Lock()

    class Listener(can.Listener):
        def on_message_received(self, msg):
            t_ns = round(msg.timestamp * 1e9)  # when the link decided it
            if receiver.feed(msg, t_ns):
                values, enabled, _ = receiver.command()
                with lock:
                    received.append((t_ns, values, enabled))

    decided: list[can.Message] = []

    def send_when_decided(t_ns: int, _values: tuple, _enabled: bool) -> None:
        for frame in decided:
            frame.timestamp = t_ns / 1e9
            station.send(frame)
        decided.clear()

    notifier = can.Notifier(machine, [Listener()], timeout=0.05)
    link = CommandLink(CommandLinkConfig(rate_hz=50, stale_timeout_s=0.1), CommandMapper(profile, "sae"),
                       profile.cab_joysticks, send=decided.append, on_command=send_when_decided)
    try:
        from excap.core.clock import now_ns

        link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
        link.start()
        sae_boom_up = (0.0, -0.8, 0.0, 0.0, 0.0, 0.0)  # SAE: left stick pulled back
        feeding = threading.Event()

        def feed():
            while not feeding.wait(0.01):
                link.set_input(OperatorInput(sae_boom_up, ENABLE, now_ns()))

        feeder = threading.Thread(target=feed)
        feeder.start()
        wait_for(lambda: any(e and v[0] > 0.5 for _, v, e in list(received)), message="boom-up frames")
        feeding.set()
        feeder.join()
        last_input = link._input.t_ns
        expiry = last_input + int(0.1e9)
        wait_for(lambda: any(t > expiry + 20 * MS for t, _, _ in list(received)), message="frames past expiry")
        with lock:
            after = [(t, v, e) for t, v, e in received if t > expiry]
        first_after = after[0]
        assert first_after[2] is False and first_after[1] == (0.0,) * 6
        assert all(not e for _, _, e in after)
    finally:
        link.stop()
        notifier.stop()
        station.shutdown()
        machine.shutdown()


@pytest.mark.parametrize("fault", ["stale", "lost", "out_of_range"])
def test_a_fault_goes_neutral_between_periods_not_at_the_next_tick(fault):
    """A slow link (5 Hz) with a 30 ms input timeout: neutral must go out before the next periodic tick.

    Asserted on the order of events (which tick sent the neutral frames), not on a wall-clock bound: the
    neutral command is sent by an early wake while the periodic tick count is still that of the last
    commanding period.
    """
    from excap.core.clock import now_ns

    profile = load_profile()
    channel = f"excap-test-{uuid.uuid4().hex}"
    station, machine = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    sent: list[tuple[int, int, bool, tuple[float, ...]]] = []  # (periodic ticks, early ticks, enabled, values)
    feeding = threading.Event()
    feeding.set()

    def operator(t_ns: int, values: tuple[float, ...], enabled: bool) -> None:
        """Each command the link sends; the operator's hand answers, until it lets go."""
        sent.append((link.periodic_ticks, link.early_ticks, enabled, values))
        if not feeding.is_set():
            return
        if link.state == LinkState.NEUTRALISED:  # a slow start went stale: release enable, then press again
            link.set_input(OperatorInput(CENTRED, RELEASED, now_ns()))
        elif link.state == LinkState.DISABLED:
            link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
        else:
            feeding.clear()  # the last input, right after this periodic tick
            if fault == "stale":
                link.set_input(OperatorInput(BOOM_UP, ENABLE, now_ns()))  # and nothing after: stale in 30 ms
            elif fault == "lost":  # a device that reports changes only (never stale) is unplugged mid-tick
                link.set_input(OperatorInput(BOOM_UP, ENABLE, now_ns(), periodic=False))
                link.input_lost("joystick unplugged")
            else:
                link.set_input(OperatorInput((0.0, 0.0, 0.0, math.nan, 0.0, 0.0), ENABLE, now_ns(), periodic=False))

    link = CommandLink(CommandLinkConfig(rate_hz=5, stale_timeout_s=0.03), CommandMapper(profile, "iso"),
                       profile.cab_joysticks, send=station.send, on_command=operator)
    try:
        link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
        link.start()
        wait_for(lambda: not feeding.is_set() and any(not e for _, _, e, _ in sent[-1:]), timeout=10,
                 message="the neutral command after the operator let go")
        counts = [(p, e) for p, e, _, _ in sent]
        steps = [(b[0] - a[0], b[1] - a[1]) for a, b in zip([(0, 0), *counts], counts, strict=False)]
        assert set(steps) <= {(1, 0), (0, 1)}  # every command counted once, as periodic or early
        active = max(i for i, (_, _, enabled, _) in enumerate(sent) if enabled)
        periodic, early, _, _ = sent[active]
        after = sent[active + 1]
        assert after[2] is False and after[3] == (0.0,) * 6
        assert (after[0], after[1]) == (periodic, early + 1)  # sent by the early wake, before the next period
        frames = []
        while (msg := machine.recv(0)) is not None:
            frames.append(msg)
        receiver = CabJoystickReceiver(profile.cab_joysticks, profile.functions)
        views = []
        for msg in frames:
            receiver.feed(msg, 0)
            views.append(receiver.command()[:2])
        count = len(profile.cab_joysticks.joysticks)
        assert len(frames) == count * len(sent)  # every command went out as one frame set
        assert views[count * (active + 1) - 1][1] is True
        assert views[count * (active + 2) - 1] == ((0.0,) * 6, False)  # the next frame set on the bus: neutral
    finally:
        feeding.clear()
        link.stop()
        station.shutdown()
        machine.shutdown()


NEUTRAL = ((0.0,) * 6, False)


def test_releasing_enable_disables_and_each_refused_enable_is_reported_once(link_and_events):
    link, events, commands = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    assert link.tick(2 * MS)[1] is True
    link.set_input(OperatorInput(BOOM_UP, RELEASED, 3 * MS))
    assert link.tick(4 * MS) == NEUTRAL and link.state == LinkState.DISABLED
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 5 * MS))  # enable pressed again with the stick deflected
    assert link.tick(6 * MS) == NEUTRAL and link.tick(7 * MS) == NEUTRAL
    link.set_input(OperatorInput(CENTRED, RELEASED, 8 * MS))
    assert link.tick(9 * MS) == NEUTRAL
    link.set_input(OperatorInput(BOOM_UP, ENABLE, 10 * MS))
    assert link.tick(11 * MS) == NEUTRAL and link.state == LinkState.DISABLED
    assert events == [("enable_refused", 6 * MS, {"reason": "sticks not in neutral"}),
                      ("enable_refused", 11 * MS, {"reason": "sticks not in neutral"})]
    assert [t for t, _, _ in commands] == [2 * MS, 4 * MS, 6 * MS, 7 * MS, 9 * MS, 11 * MS]


def test_the_fault_is_shown_until_commands_are_restored(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    link.tick(2 * MS)
    link.input_lost("joystick unplugged", t_ns=3 * MS)
    link.tick(4 * MS)
    assert link.fault == "input lost: joystick unplugged"
    link.set_input(OperatorInput(CENTRED, RELEASED, 5 * MS))
    link.tick(6 * MS)
    link.tick(7 * MS)
    link.set_input(OperatorInput(CENTRED, ENABLE, 8 * MS))
    assert link.tick(9 * MS)[1] is True and link.fault == ""
    assert events == [("neutralised", 4 * MS, {"reason": "input lost: joystick unplugged"}),
                      ("command_restored", 9 * MS, {"after": "input lost: joystick unplugged"})]


@pytest.mark.parametrize("stamp_ms", [2, 5])  # older than the loss, or at the very moment of it
def test_a_loss_stays_latched_until_input_newer_than_the_loss(link_and_events, stamp_ms):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    link.tick(2 * MS)
    link.input_lost("joystick unplugged", t_ns=5 * MS)
    assert link.tick(6 * MS) == NEUTRAL
    link.set_input(OperatorInput(CENTRED, RELEASED, stamp_ms * MS))  # a sample from before the device went
    assert link.tick(7 * MS) == NEUTRAL
    assert link.tick(7 * MS + 1) == NEUTRAL
    link.set_input(OperatorInput(CENTRED, ENABLE, stamp_ms * MS))
    assert link.tick(8 * MS) == NEUTRAL and link.state == LinkState.NEUTRALISED
    link.set_input(OperatorInput(CENTRED, RELEASED, 9 * MS))  # the device is back
    assert link.tick(10 * MS) == NEUTRAL
    assert link.tick(11 * MS) == NEUTRAL
    link.set_input(OperatorInput(CENTRED, ENABLE, 12 * MS))
    assert link.tick(13 * MS)[1] is True
    assert [kind for kind, _, _ in events] == ["neutralised", "command_restored"]


def test_a_bus_that_refuses_frames_is_counted_per_frame_and_the_link_keeps_deciding():
    profile = load_profile()
    refused: list[can.Message] = []

    def send(msg: can.Message) -> None:
        refused.append(msg)
        raise can.CanOperationError("transmit buffer full")

    link = CommandLink(CommandLinkConfig(), CommandMapper(profile), profile.cab_joysticks, send=send)
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    assert link.tick(2 * MS)[1] is True
    assert (link.send_errors, link.sent_frames, len(refused)) == (3, 0, 3)
    link.tick(3 * MS)
    assert link.send_errors == 6 and not link.guard.failed


def test_stopping_a_link_that_never_started_sends_neutral():
    from excap.core.clock import now_ns

    profile = load_profile()
    channel = f"excap-test-{uuid.uuid4().hex}"
    station, machine = can.Bus(interface="virtual", channel=channel), can.Bus(interface="virtual", channel=channel)
    commands: list = []
    link = CommandLink(CommandLinkConfig(), CommandMapper(profile), profile.cab_joysticks, send=station.send,
                       on_command=lambda t, v, e: commands.append((t, v, e)))
    try:
        before = now_ns()
        link.stop()
        assert len(commands) == 1 and commands[0][0] >= before and commands[0][1:] == ((0.0,) * 6, False)
        assert commands[0][2] is False
        frames = [machine.recv(1.0) for _ in range(3)]
        assert [bytes(f.data).hex(" ").upper() for f in frames] == ["01 00 01 00 0F 00 00 00"] * 3
    finally:
        station.shutdown()
        machine.shutdown()


def test_a_link_started_without_input_ticks_neutral_without_fault():
    profile = load_profile()
    commands: list = []
    link = CommandLink(CommandLinkConfig(rate_hz=100), CommandMapper(profile), profile.cab_joysticks,
                       on_command=lambda t, v, e: commands.append((v, e)))
    link.start()
    try:
        wait_for(lambda: link.periodic_ticks >= 3, message="three periods")
        assert not link.guard.failed and link.state == LinkState.DISABLED
        assert set(commands) == {NEUTRAL}
    finally:
        link.stop()


def test_the_link_keeps_its_rate_never_bursts_after_a_stall_and_never_spins():
    """100 Hz: median interval one period; a 50 ms stall in the send path is skipped, not made up by a burst;
    the loop wakes about once per tick, also while neutralised with a stale input."""
    from excap.core.clock import now_ns

    profile = load_profile()
    period_ns = 10 * MS
    ticks: list[int] = []
    hand = {"feeding": True, "stalled": False}

    def operator(t_ns: int, values: tuple[float, ...], enabled: bool) -> None:
        ticks.append(t_ns)
        if len(ticks) == 30 and not hand["stalled"]:
            hand["stalled"] = True
            threading.Event().wait(0.05)  # the send path hangs for five periods, once
        if hand["feeding"]:
            link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))

    link = CommandLink(CommandLinkConfig(rate_hz=100, stale_timeout_s=0.5), CommandMapper(profile),
                       profile.cab_joysticks, on_command=operator)
    link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
    link.start()
    try:
        wait_for(lambda: len(ticks) >= 60, message="sixty ticks")
        intervals = [b - a for a, b in itertools.pairwise(ticks)]
        before_stall = sorted(intervals[:25])
        assert 0.7 * period_ns < before_stall[len(before_stall) // 2] < 1.4 * period_ns
        after_stall = intervals[29:55]
        assert sum(1 for gap in after_stall if gap < period_ns / 4) <= 1  # at most one catch-up tick
        assert link.wakeups <= link.periodic_ticks + link.early_ticks + 5
        hand["feeding"] = False
        wait_for(lambda: link.state == LinkState.NEUTRALISED, message="stale input neutralised")
        ticks_then = link.periodic_ticks
        wait_for(lambda: link.periodic_ticks >= ticks_then + 5, message="five periods while neutralised")
        assert link.wakeups <= link.periodic_ticks + link.early_ticks + 5
    finally:
        link.stop()


def test_a_new_link_is_disabled_and_has_counted_nothing(link_and_events):
    link, events, commands = link_and_events
    assert (link.state, link.fault, link.last_command) == (LinkState.DISABLED, "", NEUTRAL)
    assert (link.sent_frames, link.send_errors, link.periodic_ticks, link.early_ticks, link.wakeups) == (0,) * 5
    assert events == [] and commands == []


def test_loss_reported_without_a_time_and_without_a_reason(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    link.tick(2 * MS)
    link.input_lost("")
    assert link.tick() == NEUTRAL
    assert events[-1][0] == "neutralised" and events[-1][2] == {"reason": "input lost: input lost"}


def test_fault_reasons_name_the_axes_and_the_age(link_and_events):
    link, events, _ = link_and_events
    link.set_input(OperatorInput(CENTRED, ENABLE, 1 * MS))
    link.tick(2 * MS)
    link.set_input(OperatorInput((1.5, 0.0, 0.0, math.nan, 0.0, 0.0), ENABLE, 3 * MS))
    link.tick(4 * MS)
    assert events[-1][2] == {"reason": "axis out of range: left_x, right_y"}
    link2 = CommandLink(CommandLinkConfig(stale_timeout_s=0.1), link.mapper, link.layout,
                        on_event=lambda kind, t, detail: events.append((kind, t, detail)))
    link2.set_input(OperatorInput(CENTRED, ENABLE, 10 * MS))
    link2.tick(11 * MS)
    link2.tick(10 * MS + 123_400_000)
    assert events[-1][2] == {"reason": "input stale for 123 ms"}


def test_out_of_range_input_from_another_thread_wakes_the_link_at_once_and_in_range_input_does_not():
    from excap.core.clock import now_ns

    profile = load_profile()
    link = CommandLink(CommandLinkConfig(rate_hz=5, stale_timeout_s=1.0), CommandMapper(profile),
                       profile.cab_joysticks)
    link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
    link.start()
    try:
        wait_for(lambda: link.state == LinkState.ACTIVE, message="enabled")
        for _ in range(40):  # a device reporting full deflection at 500 Hz: in range, so no wake-ups for it
            link.set_input(OperatorInput((1.0, -1.0, 0.0, 0.0, 0.0, 0.0), ENABLE, now_ns()))
            threading.Event().wait(0.002)
        assert link.wakeups <= link.periodic_ticks + link.early_ticks + 2
        for bad in ((1.5,) + (0.0,) * 5, (math.nan,) + (0.0,) * 5):
            ticks = link.periodic_ticks
            link.set_input(OperatorInput(bad, ENABLE, now_ns()))
            wait_for(lambda: link.state == LinkState.NEUTRALISED, message="neutralised")
            assert link.periodic_ticks == ticks  # by an early wake, before the next period
            link.set_input(OperatorInput(CENTRED, RELEASED, now_ns()))
            wait_for(lambda ticks=ticks: link.state == LinkState.NEUTRALISED and link.periodic_ticks > ticks,
                     message="the release seen by a periodic tick")
            link.set_input(OperatorInput(CENTRED, ENABLE, now_ns()))
            wait_for(lambda: link.state == LinkState.ACTIVE, message="enabled again")
        assert link.early_ticks >= 2 and link.wakeups >= link.periodic_ticks + link.early_ticks
    finally:
        link.stop()


@pytest.mark.parametrize("send_on_change", [True, False])
def test_a_stick_movement_goes_out_at_once_only_with_send_on_change(send_on_change):
    """A slow link (5 Hz): with send_on_change the moved stick's command is sent by a change wake, before the next
    period (asserted on which counter sent it, not on a clock); without it, by the next periodic tick."""
    from excap.core.clock import now_ns

    profile = load_profile()
    sent: list[tuple[int, int, tuple[float, ...], bool]] = []  # (periodic ticks, change ticks, values, enabled)
    moved = threading.Event()

    def operator(t_ns: int, values: tuple[float, ...], enabled: bool) -> None:
        sent.append((link.periodic_ticks, link.change_ticks, values, enabled))
        link.set_input(OperatorInput(BOOM_UP if moved.is_set() else CENTRED, ENABLE, now_ns(), periodic=False))
        if enabled and not moved.is_set():  # commanding: move the stick right after this periodic tick
            moved.set()
            link.set_input(OperatorInput(BOOM_UP, ENABLE, now_ns(), periodic=False))

    link = CommandLink(CommandLinkConfig(rate_hz=5, stale_timeout_s=0.1, send_on_change=send_on_change),
                       CommandMapper(profile, "iso"), profile.cab_joysticks, on_command=operator)
    try:
        link.set_input(OperatorInput(CENTRED, ENABLE, now_ns(), periodic=False))
        link.start()
        wait_for(lambda: any(boom(v) != 0.0 for _, _, v, _ in sent), timeout=10, message="the moved stick's command")
    finally:
        link.stop()
    assert link.wakeups <= 3 * (link.periodic_ticks + link.change_ticks) + 5  # it never spins on a pending change
    first_move = next(i for i, (_, _, v, _) in enumerate(sent) if boom(v) != 0.0)
    before, after = sent[first_move - 1], sent[first_move]
    if send_on_change:
        assert (after[0], after[1]) == (before[0], before[1] + 1)  # a change wake, same period
    else:
        assert (after[0], after[1]) == (before[0] + 1, 0) and link.change_ticks == 0  # the next period


def test_a_change_gap_longer_than_a_period_is_refused():
    from excap.core.errors import ConfigError

    with pytest.raises(ConfigError, match="min_change_gap_s"):
        CommandLinkConfig(rate_hz=50, send_on_change=True, min_change_gap_s=0.05)
