"""A scripted wheel loader operator: short-loading V-cycles between a stockpile and a truck.

Each cycle: approach the pile with the bucket lowered and level, crowd into it while rolling the bucket back in
bites, roll back fully and reverse out while turning towards the truck, drive to the truck raising the arm (the
steady raise is what the machine weighs), dump, then back away towards the pile while lowering. Seeded plans
vary the fill aimed at, where the bucket enters the pile and the throttle, and now and then a cycle is imperfect:
a shallow first bite that needs a second one, or a bucket not rolled back fully that spills on the way.

Like the excavator's operator it looks at the machine, decides machine-function commands, and moves the sticks,
pedals and forward / reverse buttons that give them under the active pattern (single_lever or two_lever), through
the same mapper a human's inputs go through; it releases and re-enables after a neutralisation. Its `phase` is the
simulator's ground truth of the work cycle: idle, load, haul_loaded, dump, return_empty.
"""

import math
from dataclasses import dataclass

import numpy as np

from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.machine.profiles import ButtonBinding
from excap.drivers.sim.angles import wrap_angle
from excap.drivers.sim.operator import StickSample
from excap.drivers.sim.wheel_loader_geometry import (
    WheelLoaderGeometry,
    WheelLoaderState,
    Yard,
    bucket_edge,
    bucket_pin,
    front_axle,
    lift_angle_for,
    to_yard,
)

PHASES = ("idle", "load", "haul_loaded", "dump", "return_empty")
"""Ground-truth work phases, in the order a cycle goes through them (after the first `idle`)."""

STEP_PHASE = {"ready": "idle", "approach": "return_empty", "crowd": "load", "curl": "load", "rebite_back": "load",
              "reverse_out": "haul_loaded", "to_truck": "haul_loaded", "dump": "dump", "back_off": "return_empty"}


@dataclass
class CyclePlan:
    fill_target: float  # share of the rated payload the operator aims at
    pile_y: float  # where along the pile face the bucket enters (m)
    throttle: float
    shallow_first_bite: bool  # leaves the pile early, so a second bite is needed
    rollback: float  # bucket angle (rad) the operator rolls back to before hauling; too low spills a full bucket


class LoaderOperator:
    REARM_RELEASE_S = 0.3
    REARM_HOLD_S = 0.3
    STEP_TIMEOUT_S = 25.0  # a step that has not finished by then gives up and moves on

    def __init__(self, mapper: CommandMapper, seed: int = 0, geometry: WheelLoaderGeometry | None = None,
                 yard: Yard | None = None, tremor: float = 0.01) -> None:
        self.mapper = mapper
        self.geometry = geometry or WheelLoaderGeometry()
        self.yard = yard or Yard()
        self.tremor = tremor
        self._rng = np.random.default_rng(seed)
        profile = mapper.profile
        self._functions = profile.functions
        self._enable = profile.buttons.index(profile.enable_button)
        fnr = mapper.pattern.bindings["direction"]
        assert isinstance(fnr, ButtonBinding), "the loader's direction is driven by forward / reverse buttons"
        self._forward = profile.buttons.index(fnr.positive)
        self._reverse = profile.buttons.index(fnr.negative) if fnr.negative else None
        self.step = "ready"
        self.cycles = 0
        self.bites = 0
        self._step_started = 0.0
        self._plan = self._new_plan()
        self._rearm_started: float | None = None
        self._lift_low = lift_angle_for(self.geometry.lift_cylinder.low, self.geometry) + 0.03
        self._lift_high = lift_angle_for(self.geometry.lift_cylinder.high, self.geometry) - 0.03

    @property
    def phase(self) -> str:
        return STEP_PHASE[self.step]

    def _new_plan(self) -> CyclePlan:
        rng = self._rng
        overfilled = bool(rng.random() < 0.25)  # crowds too long and forgets to roll back fully: it spills
        return CyclePlan(fill_target=1.1 if overfilled else float(rng.uniform(0.7, 1.0)),
                         pile_y=float(rng.uniform(-1.5, 1.5)), throttle=float(rng.uniform(0.75, 1.0)),
                         shallow_first_bite=bool(rng.random() < 0.25), rollback=0.1 if overfilled else 0.65)

    def _enter(self, step: str, s: WheelLoaderState) -> None:
        self.step = step
        self._step_started = s.t

    # -- decisions ----------------------------------------------------------------------------------

    def decide(self, s: WheelLoaderState) -> dict[str, float]:
        """Machine-function commands the operator wants now (also advances the cycle)."""
        g, yard, plan = self.geometry, self.yard, self._plan
        elapsed = s.t - self._step_started
        timed_out = elapsed > self.STEP_TIMEOUT_S
        cmd = dict.fromkeys(self._functions, 0.0)
        rated = g.rated_payload
        pin_ahead, pin_z = bucket_pin(s, g)
        if self.step == "ready":
            if elapsed > 0.3:
                self._enter("approach", s)
        elif self.step == "approach":
            cmd.update(direction=1.0, throttle=0.65, steer=self._pursue(s, (yard.pile_x + 0.5, plan.pile_y)),
                       lift=_p(self._lift_low - s.lift, 3.0), tilt=_p(-0.05 - s.bucket_angle, 3.0))
            if s.pile_depth > 0.05 or timed_out:
                self.bites = 1
                self._enter("crowd", s)
        elif self.step == "crowd":
            bite = int(elapsed * 2.0) % 2 == 0 and s.pile_depth > 0.3
            cmd.update(direction=1.0, throttle=plan.throttle, steer=_p(-s.articulation, 2.0),
                       tilt=(0.7 if plan.rollback > 0.5 else 0.3) if bite else 0.0,
                       lift=0.35 if s.pile_depth > 0.7 else 0.0)
            shallow = plan.shallow_first_bite and self.bites == 1 and elapsed > 1.2
            if s.payload >= plan.fill_target * rated or elapsed > 7.0 or shallow:
                self._enter("curl", s)
        elif self.step == "curl":
            cmd.update(direction=1.0, throttle=0.3, tilt=1.0, lift=0.4)
            if s.bucket_angle >= plan.rollback or s.tilt_cylinder >= g.tilt_cylinder.high or elapsed > 3.0:
                if s.payload < 0.5 * rated and self.bites < 2:
                    self._enter("rebite_back", s)
                else:
                    self._enter("reverse_out", s)
        elif self.step == "rebite_back":
            cmd.update(direction=-1.0, throttle=0.5, lift=_p(self._lift_low - s.lift, 3.0),
                       tilt=_p(plan.rollback - s.bucket_angle, 2.0) if s.pile_depth > 0 else 0.0)
            if (s.pile_depth == 0.0 and elapsed > 1.5) or timed_out:
                self.bites += 1
                self._enter("crowd", s)
        elif self.step == "reverse_out":
            error = wrap_angle(self._truck_heading() - s.heading)
            cmd.update(direction=-1.0, throttle=0.7, steer=_p(-error, 2.5), lift=_p(-0.4 - s.lift, 2.0),
                       tilt=max(0.0, _p(plan.rollback - s.bucket_angle, 2.0)))
            if (abs(error) < 0.12 and elapsed > 2.5) or timed_out:
                self._enter("to_truck", s)
        elif self.step == "to_truck":
            over = yard.over_truck(*to_yard(s, g, pin_ahead + 0.2))
            reaching = yard.over_truck(*to_yard(s, g, bucket_edge(s, g)[0] + 1.0))
            high_enough = pin_z > yard.truck_side_height + 0.2
            stop = over or (reaching and not high_enough)
            cmd.update(direction=1.0, throttle=0.0 if stop else 0.7, brake=1.0 if stop else 0.0,
                       steer=self._pursue(s, self._dump_point()), lift=_p(self._lift_high - s.lift, 4.0) * 0.8,
                       tilt=_p(plan.rollback - s.bucket_angle, 2.0) if s.bucket_angle < plan.rollback - 0.1 else 0.0)
            if (over and high_enough and abs(s.speed) < 0.05) or timed_out:
                self._enter("dump", s)
        elif self.step == "dump":
            cmd.update(direction=1.0, brake=1.0, throttle=0.4, tilt=-1.0)
            if (s.payload < 0.03 * rated and s.bucket_angle < -0.5) or elapsed > 8.0:
                self.cycles += 1
                self._plan = self._new_plan()
                self._enter("back_off", s)
        elif self.step == "back_off":
            pile = (yard.pile_x + 0.5, self._plan.pile_y)
            error = wrap_angle(math.atan2(pile[1] - s.y, pile[0] - s.x) - s.heading)
            cmd.update(direction=-1.0, throttle=0.7, steer=_p(-error, 2.5),
                       lift=_p(self._lift_low - s.lift, 1.5), tilt=_p(-0.05 - s.bucket_angle, 2.0))
            if (abs(error) < 0.15 and elapsed > 2.5) or timed_out:
                self._enter("approach", s)
        return cmd

    def _truck_heading(self) -> float:
        """The heading the operator leaves the pile on: square to the truck's side."""
        return self.yard.truck_heading - math.pi / 2

    def _dump_point(self) -> tuple[float, float]:
        """A point beyond the middle of the truck's near side, on the line square to it."""
        cx, cy = self.yard.truck_centre
        heading = self._truck_heading()
        return cx + 2.0 * math.cos(heading), cy + 2.0 * math.sin(heading)

    def _pursue(self, s: WheelLoaderState, target: tuple[float, float]) -> float:
        """Steering that points the front frame at `target` (driving forward)."""
        fx, fy = front_axle(s, self.geometry)
        error = wrap_angle(math.atan2(target[1] - fy, target[0] - fx) - s.front_heading)
        return _p(error, 2.0)

    # -- hands ----------------------------------------------------------------------------------------

    def sample(self, s: WheelLoaderState, commands_blocked: bool = False) -> StickSample:
        """Stick, pedal and button positions now. `commands_blocked`: the station shows commands neutralised (or
        enable refused); release enable, centre everything, then re-enable, as a trained operator does."""
        buttons = [0] * len(self.mapper.profile.buttons)
        if commands_blocked and self._rearm_started is None:
            self._rearm_started = s.t
        if self._rearm_started is not None:
            elapsed = s.t - self._rearm_started
            if elapsed >= self.REARM_RELEASE_S:
                buttons[self._enable] = 1
            if elapsed >= self.REARM_RELEASE_S + self.REARM_HOLD_S:
                self._rearm_started = s.t if commands_blocked else None
            return StickSample(tuple(0.0 for _ in self.mapper.profile.axes), tuple(buttons), "idle")
        wanted = self.decide(s)
        axes = self.mapper.sticks_for([wanted[f] for f in self._functions])
        axes = [max(-1.0, min(1.0, a + (float(self._rng.normal(0, self.tremor)) if a else 0.0))) for a in axes]
        buttons[self._enable] = 1
        if wanted["direction"] > 0.5:
            buttons[self._forward] = 1
        elif wanted["direction"] < -0.5 and self._reverse is not None:
            buttons[self._reverse] = 1
        return StickSample(tuple(axes), tuple(buttons), self.phase)


def _p(error: float, gain: float) -> float:
    return max(-1.0, min(1.0, error * gain))
