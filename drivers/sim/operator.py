"""A scripted operator: dig, swing loaded, dump, swing back, now and then a short travel.

It watches the machine like a person does and decides machine-function commands, then moves the
sticks that produce them under the active control pattern (ISO or SAE), with a little hand tremor.
The sticks, not the commands, are its output: they go through the same mapping a human's would.
"""

import math
from dataclasses import dataclass

import numpy as np

from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.sim.angles import wrap_angle
from excap.drivers.sim.excavator import ExcavatorGeometry, ExcavatorState, bucket_tip

PHASES = ("ready", "return", "dig", "swing_loaded", "dump", "travel")


@dataclass
class CycleTargets:
    dump_swing: float
    dig_depth: float
    arm_reach: float


@dataclass(frozen=True)
class StickSample:
    axes: tuple[float, ...]
    buttons: tuple[int, ...]
    phase: str


class ScriptedOperator:
    REARM_RELEASE_S = 0.3  # enable released, sticks centred
    REARM_HOLD_S = 0.3  # enable pressed again with the sticks centred, before moving on

    def __init__(self, mapper: CommandMapper, seed: int = 0, geometry: ExcavatorGeometry | None = None,
                 tremor: float = 0.01, travel_every: int = 4) -> None:
        self.mapper = mapper
        self.geometry = geometry or ExcavatorGeometry()
        self._rng = np.random.default_rng(seed)
        self.tremor = tremor
        self.travel_every = travel_every
        self.phase = "ready"  # enable pressed with the sticks centred, as the interlock requires
        self.cycles = 0
        self._phase_started = 0.0
        self._targets = self._new_targets()
        self._functions = mapper.profile.functions
        self._enable = mapper.profile.buttons.index(mapper.profile.enable_button)
        self._rearm_started: float | None = None

    def _new_targets(self) -> CycleTargets:
        return CycleTargets(dump_swing=math.radians(self._rng.uniform(80, 100)),
                            dig_depth=self._rng.uniform(0.3, 0.7), arm_reach=self._rng.uniform(-1.0, -0.8))

    def _enter(self, phase: str, s: ExcavatorState) -> None:
        self.phase = phase
        self._phase_started = s.t

    def decide(self, s: ExcavatorState) -> dict[str, float]:
        """Machine-function commands the operator wants now (also advances the cycle)."""
        targets = self._targets
        _, tip_z = bucket_tip(s, self.geometry)
        swing = wrap_angle(s.swing)
        elapsed = s.t - self._phase_started
        cmd = dict.fromkeys(self._functions, 0.0)
        if self.phase == "ready":
            if elapsed > 0.3:
                self._enter("return", s)
        elif self.phase == "return":
            cmd["swing"] = _p(0.0 - swing, 2.5)
            cmd["arm"] = _p(s.arm - targets.arm_reach, 2.0)
            cmd["bucket"] = _p(s.bucket - (-0.4), 2.0)
            if abs(swing) < 0.6:
                cmd["boom"] = _p(0.1 - tip_z, 0.6)
            if abs(swing) < 0.05 and tip_z < 0.25 and abs(s.swing_rate) < 0.1:
                self._enter("dig", s)
        elif self.phase == "dig":
            cmd["arm"] = 0.6
            cmd["bucket"] = 0.35 + 0.5 * min(1.0, elapsed / 4.0)
            cmd["boom"] = _p(-targets.dig_depth - tip_z, 0.8)
            if s.bucket_fill >= 0.95 or s.arm <= -2.3 or elapsed > 8.0:
                self._enter("swing_loaded", s)
        elif self.phase == "swing_loaded":
            cmd["bucket"] = _p(s.bucket - (-2.2), 2.0)
            cmd["boom"] = _p(0.95 - s.boom, 2.0)
            if tip_z > 1.5:
                cmd["swing"] = _p(targets.dump_swing - swing, 2.5)
            if abs(targets.dump_swing - swing) < 0.05 and s.boom > 0.8 and abs(s.swing_rate) < 0.1:
                self._enter("dump", s)
        elif self.phase == "dump":
            cmd["arm"] = _p(s.arm - (-1.1), 2.0)
            cmd["bucket"] = -1.0
            if (s.bucket_fill <= 0.0 and s.bucket > 0.2) or elapsed > 6.0:
                self.cycles += 1
                self._targets = self._new_targets()
                self._enter("travel" if self.cycles % self.travel_every == 0 else "return", s)
        elif self.phase == "travel":
            cmd["travel_left"] = cmd["travel_right"] = 0.6 if elapsed < 2.5 else 0.0
            cmd["boom"] = _p(0.7 - s.boom, 1.0)
            if elapsed > 3.5:
                self._enter("return", s)
        return cmd

    def sample(self, s: ExcavatorState, commands_blocked: bool = False) -> StickSample:
        """Stick positions now. `commands_blocked`: the station shows commands neutralised (or enable
        refused); like a trained operator, release enable, centre the sticks, then re-enable."""
        if commands_blocked and self._rearm_started is None:
            self._rearm_started = s.t
        if self._rearm_started is not None:
            elapsed = s.t - self._rearm_started
            buttons = [0] * len(self.mapper.profile.buttons)
            if elapsed >= self.REARM_RELEASE_S:
                buttons[self._enable] = 1
            if elapsed >= self.REARM_RELEASE_S + self.REARM_HOLD_S:
                # still blocked: the fault outlasted the first try, so release and re-enable again
                self._rearm_started = s.t if commands_blocked else None
            return StickSample(tuple(0.0 for _ in self.mapper.profile.axes), tuple(buttons), "rearm")
        wanted = self.decide(s)
        commands = [wanted[f] for f in self._functions]
        axes = self.mapper.sticks_for(commands)
        axes = [max(-1.0, min(1.0, a + (self._rng.normal(0, self.tremor) if a else 0.0))) for a in axes]
        buttons = [0] * len(self.mapper.profile.buttons)
        buttons[self._enable] = 1
        return StickSample(tuple(axes), tuple(buttons), self.phase)


def _p(error: float, gain: float) -> float:
    return max(-1.0, min(1.0, error * gain))
