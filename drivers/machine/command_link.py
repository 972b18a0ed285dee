"""The safety-relevant command path: operator inputs -> machine-function commands -> J1939 frames.

Every period (`rate_hz`) the link decides what to send, from the latest operator input:

- input lost (device unplugged), stale (older than `stale_timeout_s`, for devices that report
  periodically) or out of range (NaN, |axis| > 1) -> neutral and disabled, an event, and a latch:
- after a fault, or when enable is pressed with sticks off centre, commands only flow again once
  the operator has released enable and pressed it again with every stick in neutral.

Frames go out every period. Between periods the link also wakes when a fault appears (a loss
is reported, an input is out of range, or the current input's timeout expires) and sends the
neutral frames at once, so time to neutral is a scheduling delay, well inside one period
(measured by `excap bench safety`). With `send_on_change` the link also wakes when the operator's
input changes and sends the new command at once (at most once per `min_change_gap_s`), so a
stick movement reaches the machine in a scheduling delay instead of up to one period.

The link's own thread never dies silently: if its loop raises (a bug, a `send` that raises
something other than a bus error), the link sends neutral frames, reports a `fault` event naming
the command link and the error, and stays FAULTED (neutral, no more commands) until it is stopped.
"""

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import can

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.core.periodic import Late, Periodic
from excap.drivers.base import DeviceFault, ThreadGuard
from excap.drivers.limits import COMMAND_RATE_HZ, STALE_TIMEOUT_S
from excap.drivers.machine.cab_joysticks import CabJoystickLayout
from excap.drivers.machine.mapping import CommandMapper

log = logging.getLogger(__name__)

CommandCallback = Callable[[int, tuple[float, ...], bool], object]
EventCallback = Callable[[str, int, dict[str, object]], None]


class LinkState(StrEnum):
    DISABLED = "disabled"  # enable not held (or refused: sticks off centre)
    ACTIVE = "active"  # commands flow
    NEUTRALISED = "neutralised"  # latched after a fault until re-enabled from neutral
    FAULTED = "faulted"  # the link's own thread failed: neutral sent, no commands until stopped


@dataclass(kw_only=True)
class CommandLinkConfig:
    """Checked when built and when the link starts: a rate or timeout outside its range is a ConfigError."""

    rate_hz: float = 50.0
    stale_timeout_s: float = 0.1
    send_on_change: bool = False  # also send between periods as soon as the input changes
    min_change_gap_s: float = 0.001  # between two such sends (bounds the extra bus load)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        self.rate_hz = COMMAND_RATE_HZ.check(self.rate_hz, "command rate_hz")
        self.stale_timeout_s = STALE_TIMEOUT_S.check(self.stale_timeout_s, "command stale_timeout_s")
        if not (math.isfinite(self.min_change_gap_s) and 0.0 <= self.min_change_gap_s <= 1.0 / self.rate_hz):
            raise ConfigError(f"command min_change_gap_s must be between 0 and one period, "
                              f"not {self.min_change_gap_s}")


@dataclass(frozen=True)
class OperatorInput:
    axes: tuple[float, ...]
    buttons: tuple[int, ...]
    t_ns: int
    periodic: bool = True  # the device reports at a fixed rate, so silence means it is stale


class CommandLink:
    def __init__(self, config: CommandLinkConfig, mapper: CommandMapper, layout: CabJoystickLayout | None,
                 send: Callable[[can.Message], None] | None = None, on_command: CommandCallback | None = None,
                 on_event: EventCallback | None = None) -> None:
        self.config = config
        self.mapper = mapper
        self.layout = layout
        self._send = send
        self._on_command = on_command
        self._on_event = on_event
        self._input: OperatorInput | None = None
        self._lost: str = ""
        self._lost_at = 0
        self.state = LinkState.DISABLED
        self.fault = ""
        self._released_since_fault = False
        self._refusal_reported = False
        self._worker: Periodic | None = None
        self.guard = ThreadGuard("command_link")
        self.guard.listen(self._faulted)
        self.sent_frames = 0
        self.send_errors = 0
        self.periodic_ticks = 0
        """Ticks sent on the period's cadence."""
        self.early_ticks = 0
        """Ticks sent between periods because a fault appeared (the early wake)."""
        self.change_ticks = 0
        """Ticks sent between periods because the input changed (`send_on_change`)."""
        self._emitted_input: OperatorInput | None = None
        self._last_emit_s = 0.0
        self.last_command: tuple[tuple[float, ...], bool] = (self._neutral(), False)

    @property
    def wakeups(self) -> int:
        """Times the link's thread woke up (a few per period: it never spins)."""
        return 0 if self._worker is None else self._worker.wakeups

    @property
    def awaiting_enable(self) -> bool:
        """Neutralised, and the link has seen enable released since the fault: pressing enable with the sticks
        in neutral restores commands at the next period."""
        return self.state == LinkState.NEUTRALISED and self._released_since_fault

    # -- inputs (any thread) ----------------------------------------------------------------

    def set_input(self, operator_input: OperatorInput) -> None:
        self._input = operator_input
        out_of_range = any(not math.isfinite(a) or abs(a) > 1.0 for a in operator_input.axes)
        if out_of_range or (self.config.send_on_change and self._input_changed()):
            self._wake()

    def input_lost(self, reason: str, t_ns: int | None = None) -> None:
        """A device is gone (unplugged, port closed): neutral from the next period on.

        The loss is latched even if the device is back before that period: the operator must
        re-enable from neutral either way.
        """
        self._lost_at = now_ns() if t_ns is None else t_ns
        self._lost = reason or "input lost"
        self._wake()

    # -- decision (pure, testable) ---------------------------------------------------------

    def _neutral(self) -> tuple[float, ...]:
        return tuple(0.0 for _ in self.mapper.profile.functions)

    def _input_fault(self, t_ns: int) -> str:
        """Why the current input must not drive the machine at `t_ns` ('' when it may); no side effects."""
        current = self._input
        if self._lost:
            return f"input lost: {self._lost}"
        if current is None:
            return "no input yet"
        if current.periodic and (t_ns - current.t_ns) / 1e9 > self.config.stale_timeout_s:
            return f"input stale for {(t_ns - current.t_ns) / 1e6:.0f} ms"
        bad = [i for i, a in enumerate(current.axes) if not math.isfinite(a) or abs(a) > 1.0]
        if bad:
            return "axis out of range: " + ", ".join(self.mapper.profile.axes[i] for i in bad)
        return ""

    def decide(self, t_ns: int) -> tuple[tuple[float, ...], bool]:
        """The command to send at `t_ns`; updates the link state and raises events."""
        if self.state == LinkState.FAULTED:
            return self._neutral(), False
        if self._input is None and not self._lost:
            return self._neutral(), False  # nothing to act on yet: stay disabled, nothing to report
        fault = self._input_fault(t_ns)
        if fault:
            current = self._input
            if self._lost and current is not None and current.t_ns > self._lost_at:
                self._lost = ""  # the device is back; this decision still neutralises and latches
            if self.state != LinkState.NEUTRALISED:
                self._event("neutralised", t_ns, reason=fault)
            self.fault = fault
            self.state = LinkState.NEUTRALISED
            self._released_since_fault = False
            return self._neutral(), False
        assert self._input is not None
        command = self.mapper.command(self._input.axes, self._input.buttons)
        enable_held = command.enabled
        sticks_neutral = all(v == 0.0 for v in self.mapper.command(
            self._input.axes, [1] * len(self._input.buttons)).values)
        if self.state == LinkState.NEUTRALISED:
            if not enable_held:
                self._released_since_fault = True
            if self._released_since_fault and enable_held and sticks_neutral:
                self.state = LinkState.ACTIVE
                self._event("command_restored", t_ns, after=self.fault)
                self.fault = ""
                return command.values, True
            return self._neutral(), False
        if not enable_held:
            self.state = LinkState.DISABLED
            self._refusal_reported = False
            return self._neutral(), False
        if self.state == LinkState.DISABLED:
            if not sticks_neutral:
                if not self._refusal_reported:
                    self._event("enable_refused", t_ns, reason="sticks not in neutral")
                    self._refusal_reported = True
                return self._neutral(), False
            self.state = LinkState.ACTIVE
        return command.values, True

    def _event(self, kind: str, t_ns: int, **detail: object) -> None:
        log.info("command link %s: %s", kind, detail)
        if self._on_event is not None:
            self._on_event(kind, t_ns, detail)

    # -- output ----------------------------------------------------------------------------

    def tick(self, t_ns: int | None = None) -> tuple[tuple[float, ...], bool]:
        t_ns = now_ns() if t_ns is None else t_ns
        values, enabled = self.decide(t_ns)
        self._emit(t_ns, values, enabled)
        return values, enabled

    def _emit(self, t_ns: int, values: Sequence[float], enabled: bool) -> None:
        self.last_command = (tuple(values), enabled)
        self._emitted_input, self._last_emit_s = self._input, time.monotonic()
        if self._send is not None and self.layout is not None:
            for frame in self.layout.frames(self.mapper.profile.functions, values, enabled):
                try:
                    self._send(frame)
                    self.sent_frames += 1
                except (can.CanError, DriverError, OSError) as exc:  # bus gone: keep deciding, count, retry next period
                    self.send_errors += 1
                    log.warning("command frame not sent: %s", exc)
        if self._on_command is not None:
            self._on_command(t_ns, tuple(values), enabled)

    def start(self) -> None:
        self.config.check()  # a rate that would make the loop spin or die is refused here, in the caller
        self._worker = Periodic("command-link", 1.0 / self.config.rate_hz, self._periodic_tick, late=Late.SKIP,
                                guard=self.guard, on_wake=self._early_tick, deadline=self._wake_deadline_s)
        self._worker.start()

    def stop(self) -> None:
        """Stop sending; the last frames sent are neutral. Never raises."""
        if self._worker is not None:
            self._worker.stop()
        self._send_neutral()

    def _wake(self) -> None:
        worker = self._worker
        if worker is not None:
            worker.wake()

    def _send_neutral(self) -> None:
        try:
            self._emit(now_ns(), self._neutral(), False)
        except Exception:
            log.exception("command link: neutral frames not sent")

    def _faulted(self, fault: DeviceFault) -> None:
        """The loop died: neutral at once, then the fault is reported and latched."""
        self.state = LinkState.FAULTED
        self.fault = f"command link failed: {fault.error}"
        self._send_neutral()
        self._event("fault", fault.t_ns, **fault.detail())

    def _wake_deadline_s(self) -> float:
        """Monotonic time (s) at which the link must wake between periods: the current input turns stale, or a
        changed input's command is due (`send_on_change`, once the gap since the last send has passed)."""
        return min(self._stale_deadline_s(), self._change_deadline_s())

    def _change_deadline_s(self) -> float:
        if not self.config.send_on_change or self.state == LinkState.FAULTED or not self._input_changed():
            return math.inf
        return self._last_emit_s + self.config.min_change_gap_s

    def _stale_deadline_s(self) -> float:
        """Monotonic time (s) at which the current input turns stale, if that matters now."""
        current = self._input
        if current is None or not current.periodic or self.state == LinkState.NEUTRALISED:
            return math.inf
        return current.t_ns / 1e9 + self.config.stale_timeout_s + 1e-4

    def _fault_pending(self) -> bool:
        """A fault the link has not acted on yet (it acts by neutralising, which latches)."""
        if self.state in (LinkState.NEUTRALISED, LinkState.FAULTED) or self._input is None:
            return False
        return bool(self._input_fault(now_ns()))

    def _periodic_tick(self, _index: int) -> None:
        """On the period's cadence (a late period is skipped, never made up by a burst)."""
        self.periodic_ticks += 1
        self.tick()

    def _input_changed(self) -> bool:
        """The operator's sticks or buttons differ from those of the last command sent."""
        current, sent = self._input, self._emitted_input
        return current is not None and (sent is None or current.axes != sent.axes or current.buttons != sent.buttons)

    def _early_tick(self) -> None:
        """Woken between periods: a fault appeared, so the neutral frames go out now, out of cadence; or (with
        `send_on_change`) the input changed, so the new command goes out now."""
        if self._fault_pending():
            self.early_ticks += 1
            self.tick()
        elif (self.config.send_on_change and self.state != LinkState.FAULTED and self._input_changed()
              and time.monotonic() - self._last_emit_s >= self.config.min_change_gap_s):
            self.change_ticks += 1
            self.tick()
