"""Kinematics and hydraulics of a 20 t class excavator, good enough to make plausible data.

Angles (radians): `boom` is the boom to horizontal (up positive); `arm` is the arm relative to
the boom and `bucket` the bucket relative to the arm, both more negative when curled in;
`swing` is the upper structure's heading relative to the tracks, counter-clockwise positive.
Commands are machine functions in [-1, 1] with the signs of the excavator profile.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from excap.drivers.sim.angles import wrap_angle

FUNCTIONS = ("boom", "arm", "bucket", "swing", "travel_left", "travel_right")


@dataclass(frozen=True)
class JointLimits:
    low: float
    high: float
    max_rate: float  # rad/s at full command and rated engine speed


@dataclass(frozen=True)
class ExcavatorGeometry:
    boom_pivot: tuple[float, float] = (0.6, 2.0)  # from the swing centre: forward, up (m)
    boom_length: float = 5.7
    arm_length: float = 2.9
    bucket_length: float = 1.5
    track_gauge: float = 2.4
    boom: JointLimits = JointLimits(-0.95, 1.10, 0.45)
    arm: JointLimits = JointLimits(-2.70, -0.50, 0.55)
    bucket: JointLimits = JointLimits(-2.40, 0.50, 1.00)
    swing_rate: float = 1.0  # rad/s
    swing_accel: float = 1.5  # rad/s^2
    travel_speed: float = 1.5  # m/s
    valve_time_constant: float = 0.12  # s, spool and flow response
    pump_capacity: float = 2.2  # sum of |command| the pumps can serve at full speed


@dataclass(frozen=True)
class ExcavatorState:
    t: float = 0.0
    boom: float = 0.35
    arm: float = -1.6
    bucket: float = -1.0
    swing: float = 0.0
    boom_rate: float = 0.0
    arm_rate: float = 0.0
    bucket_rate: float = 0.0
    swing_rate: float = 0.0
    left_track: float = 0.0
    right_track: float = 0.0
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    engine_rpm: float = 1000.0
    engine_load: float = 0.1
    fuel_rate: float = 5.0
    fuel_level: float = 78.0
    engine_hours: float = 4213.7
    coolant_temp: float = 62.0
    hydraulic_temp: float = 41.0
    bucket_fill: float = 0.0
    dumped_loads: int = 0
    pump1: float = 30.0
    pump2: float = 30.0
    boom_head: float = 90.0
    boom_rod: float = 20.0
    arm_head: float = 40.0
    arm_rod: float = 30.0
    bucket_head: float = 30.0
    bucket_rod: float = 25.0
    commands: tuple[float, ...] = (0.0,) * len(FUNCTIONS)
    enabled: bool = False

    @property
    def arm_absolute(self) -> float:
        return self.boom + self.arm

    @property
    def bucket_absolute(self) -> float:
        return self.boom + self.arm + self.bucket


def joint_points(state: ExcavatorState, geometry: ExcavatorGeometry) -> list[tuple[float, float]]:
    """Boom pivot, arm pivot, bucket pivot and bucket tip in the boom plane (forward, up), metres."""
    x0, z0 = geometry.boom_pivot
    points = [(x0, z0)]
    for length, angle in ((geometry.boom_length, state.boom), (geometry.arm_length, state.arm_absolute),
                          (geometry.bucket_length, state.bucket_absolute)):
        x, z = points[-1]
        points.append((x + length * math.cos(angle), z + length * math.sin(angle)))
    return points


def bucket_tip(state: ExcavatorState, geometry: ExcavatorGeometry) -> tuple[float, float]:
    return joint_points(state, geometry)[-1]


def _approach(value: float, target: float, dt: float, tau: float) -> float:
    return value + (target - value) * (1.0 - math.exp(-dt / tau))


class ExcavatorModel:
    """Integrates the machine's state from machine-function commands."""

    GROUND_Z = 0.0
    DIG_SECTOR = 0.6  # rad either side of swing 0 where the ground is diggable

    def __init__(self, geometry: ExcavatorGeometry | None = None, seed: int = 0) -> None:
        self.geometry = geometry or ExcavatorGeometry()
        self.state = ExcavatorState()
        self._rng = np.random.default_rng(seed)
        self._idle_for = 0.0

    def step(self, dt: float, commands: tuple[float, ...], enabled: bool) -> ExcavatorState:
        g, s = self.geometry, self.state
        cmd = [max(-1.0, min(1.0, c)) for c in commands] if enabled else [0.0] * len(FUNCTIONS)
        boom_c, arm_c, bucket_c, swing_c, left_c, right_c = cmd
        demand = sum(abs(c) for c in cmd)
        self._idle_for = 0.0 if demand > 0.02 else self._idle_for + dt
        rpm_target = 1800.0 if self._idle_for < 4.0 else 1000.0
        flow_share = min(1.0, g.pump_capacity / demand) if demand > 0 else 1.0
        speed_factor = flow_share * min(1.0, s.engine_rpm / 1800.0)

        _, tip_z = bucket_tip(s, g)
        in_soil = tip_z < self.GROUND_Z and abs(wrap_angle(s.swing)) < self.DIG_SECTOR
        soil_drag = 0.5 if in_soil else 1.0
        load = 1.0 + 0.6 * s.bucket_fill

        tau = g.valve_time_constant
        boom_rate = _approach(s.boom_rate, boom_c * g.boom.max_rate * speed_factor / (load if boom_c > 0 else 1),
                              dt, tau)
        arm_rate = _approach(s.arm_rate, -arm_c * g.arm.max_rate * speed_factor * soil_drag, dt, tau)
        bucket_rate = _approach(s.bucket_rate, -bucket_c * g.bucket.max_rate * speed_factor * soil_drag, dt, tau)
        swing_target = swing_c * g.swing_rate * speed_factor
        swing_step = max(-g.swing_accel * dt, min(g.swing_accel * dt, swing_target - s.swing_rate))
        swing_rate = s.swing_rate + swing_step

        boom, boom_rate = _limit(s.boom + boom_rate * dt, boom_rate, g.boom)
        arm, arm_rate = _limit(s.arm + arm_rate * dt, arm_rate, g.arm)
        bucket, bucket_rate = _limit(s.bucket + bucket_rate * dt, bucket_rate, g.bucket)
        swing = s.swing + swing_rate * dt

        left = _approach(s.left_track, left_c * g.travel_speed * speed_factor, dt, 0.4)
        right = _approach(s.right_track, right_c * g.travel_speed * speed_factor, dt, 0.4)
        speed = (left + right) / 2.0
        heading = s.heading + (right - left) / g.track_gauge * dt
        x = s.x + speed * math.cos(heading) * dt
        y = s.y + speed * math.sin(heading) * dt

        fill = s.bucket_fill
        if in_soil:
            fill += (max(0.0, -bucket_rate) * 0.6 + max(0.0, -arm_rate) * 0.9) * dt
        tip_direction = wrap_angle(s.bucket_absolute)  # tip pointing forward: mouth faces down, load slides out
        mouth_down = -0.9 < tip_direction < 1.2
        dumped = s.dumped_loads
        if mouth_down and fill > 0.0 and not in_soil:
            fill -= 1.2 * dt
            if fill <= 0.0:
                dumped += 1
        fill = max(0.0, min(1.0, fill))

        hydraulic_power = (abs(boom_rate) / g.boom.max_rate * (1.5 if boom_c > 0 else 0.5) * load
                           + abs(arm_rate) / g.arm.max_rate * (2.0 if in_soil else 0.8)
                           + abs(bucket_rate) / g.bucket.max_rate * (1.6 if in_soil else 0.5)
                           + abs(swing_rate) / g.swing_rate * 0.9 + (abs(left) + abs(right)) / g.travel_speed)
        engine_load = max(0.08, min(1.0, 0.08 + 0.22 * hydraulic_power))
        rpm = _approach(s.engine_rpm, rpm_target - 150.0 * engine_load, dt, 0.6)
        fuel_rate = 4.0 + 28.0 * engine_load * rpm / 1800.0
        noise = self._rng.normal(0.0, 1.0, 6)

        def bar(value: float, index: int) -> float:
            return max(0.0, value + 2.0 * float(noise[index]))

        cos_boom = math.cos(boom)
        self.state = replace(
            s,
            t=s.t + dt,
            boom=boom, arm=arm, bucket=bucket, swing=swing,
            boom_rate=boom_rate, arm_rate=arm_rate, bucket_rate=bucket_rate, swing_rate=swing_rate,
            left_track=left, right_track=right, x=x, y=y, heading=heading,
            engine_rpm=rpm, engine_load=engine_load, fuel_rate=fuel_rate,
            fuel_level=max(0.0, s.fuel_level - fuel_rate * dt / 3600.0 / 4.0),
            engine_hours=s.engine_hours + dt / 3600.0,
            coolant_temp=_approach(s.coolant_temp, 86.0 + 4.0 * engine_load, dt, 300.0),
            hydraulic_temp=_approach(s.hydraulic_temp, 55.0 + 8.0 * engine_load, dt, 600.0),
            bucket_fill=fill, dumped_loads=dumped,
            pump1=bar(30.0 + 120.0 * (abs(boom_c) + abs(bucket_c) + abs(right_c)) * load
                      + (120.0 if in_soil else 0.0), 0),
            pump2=bar(30.0 + 120.0 * (abs(arm_c) + abs(swing_c) + abs(left_c)) + (150.0 if in_soil else 0.0), 1),
            boom_head=bar(70.0 + 50.0 * cos_boom * load + 140.0 * max(0.0, boom_c), 2),
            boom_rod=bar(20.0 + 90.0 * max(0.0, -boom_c), 3),
            arm_head=bar(40.0 + 160.0 * max(0.0, arm_c) * (1.8 if in_soil else 1.0), 4),
            arm_rod=bar(30.0 + 90.0 * max(0.0, -arm_c), 5),
            bucket_head=bar(30.0 + 150.0 * max(0.0, bucket_c) * (1.7 if in_soil else 1.0), 0),
            bucket_rod=bar(25.0 + 80.0 * max(0.0, -bucket_c), 1),
            commands=tuple(cmd), enabled=enabled,
        )
        return self.state


def _limit(value: float, rate: float, limits: JointLimits) -> tuple[float, float]:
    if value <= limits.low:
        return limits.low, max(0.0, rate)
    if value >= limits.high:
        return limits.high, min(0.0, rate)
    return value, rate


