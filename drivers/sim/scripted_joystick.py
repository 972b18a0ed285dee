"""The scripted operator as a periodic joystick device (joystick type `sim` of a simulated station).

Every period it looks at the simulated machine, decides, and reports the stick positions that give what it
wants under the active control pattern. Its work phase (the simulator's ground truth: dig, swing, dump, ... for
the excavator, load, haul_loaded, dump, return_empty, idle for the wheel loader) is reported as an
`operator_phase` event when it changes.

`commands_blocked` tells it that the station has neutralised the commands: like a trained operator it
then releases enable, centres the sticks and enables again (see `ScriptedOperator.sample`).
`stalls` are fault drills: `(at_s, for_s)` windows, counted from `open()`, in which the device reports
nothing, so the command link sees a stale input.
"""

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from excap.core.clock import now_ns
from excap.core.periodic import Late, Periodic
from excap.drivers.base import Health, ThreadGuard
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.limits import SIM_JOYSTICK_RATE_HZ
from excap.drivers.sim import truth
from excap.drivers.sim.machine import SimulatedMachine
from excap.drivers.sim.operator import StickSample


class StickSource(Protocol):
    """A scripted operator of any machine kind (`SimMachineKind.operator`)."""

    def sample(self, s: Any, commands_blocked: bool = False) -> StickSample: ...


EventFunction = Callable[..., None]
"""(kind, t_ns=None, **detail) -> None, like `Recorder.event`."""


class ScriptedJoystick:
    def __init__(self, name: str, operator: StickSource, machine: SimulatedMachine, on_sample: SampleCallback,
                 event: EventFunction | None = None, rate_hz: float = 100.0,
                 commands_blocked: Callable[[], bool] | None = None,
                 stalls: Sequence[tuple[float, float]] = ()) -> None:
        self.name = name
        self.operator = operator
        self.machine = machine
        self.on_sample = on_sample
        self.event = event
        self.period = 1.0 / SIM_JOYSTICK_RATE_HZ.check(rate_hz, f"joystick {name}: rate_hz")
        self.commands_blocked = commands_blocked
        self.stalls = tuple((float(at), float(length)) for at, length in stalls)
        self.phase = ""
        self.stalled_ticks = 0
        """Periods in which a stall kept the device silent."""
        self._health = Health.STOPPED
        self._opened = 0.0
        self.guard = ThreadGuard(f"joystick/{name}")
        # A periodic device that fell behind reports its current sticks, never a burst of stale ones.
        self._worker = Periodic(f"sim-joystick-{name}", self.period, self._sample, late=Late.SKIP, guard=self.guard)

    @property
    def health(self) -> Health:
        if self.guard.failed and self._health is not Health.STOPPED:
            return Health.FAILED
        return self._health

    def open(self) -> None:
        self._health = Health.OK
        self._opened = time.monotonic()
        self._worker.start()

    def close(self) -> None:
        self._worker.stop()
        self._health = Health.STOPPED

    def stalled(self, elapsed_s: float) -> bool:
        """Whether a stall keeps the device silent `elapsed_s` after it was opened."""
        return any(at <= elapsed_s < at + length for at, length in self.stalls)

    def _sample(self, _index: int) -> None:
        if self.stalls and self.stalled(time.monotonic() - self._opened):
            self.stalled_ticks += 1
            return
        stamps = truth.active()
        produced_ns = now_ns() if stamps is not None else 0  # the instant the sticks are read
        blocked = self.commands_blocked is not None and self.commands_blocked()
        sticks = self.operator.sample(self.machine.state, commands_blocked=blocked)
        t_ns = now_ns()
        if stamps is not None:
            stamps.add(truth.JOYSTICK, self.name, produced_ns, t_ns)
        self.on_sample(JoystickSample(self.name, t_ns, t_ns, sticks.axes, sticks.buttons))
        if sticks.phase != self.phase:
            self.phase = sticks.phase
            if self.event is not None:
                self.event("operator_phase", t_ns=t_ns, device=self.name, phase=self.phase)
