"""Kinematics, hydraulics and drivetrain of a 20 t class articulated wheel loader, good enough for plausible data.

Frames and signs: the machine's pose `x`, `y` is its articulation joint in the yard (metres), `heading` the rear
(cab) frame's heading, counter-clockwise positive; `articulation` is the front frame relative to the rear one,
positive to the left, limited to +-40 degrees. `lift` is the lift arm's angle to horizontal (up positive), set
by the lift cylinders' length through the arm's triangle geometry; `tilt_cylinder` is the tilt cylinder's
length, and `bucket_angle` the bucket floor's angle to the ground (positive rolled back, negative dumping),
which a Z-bar linkage derives from both cylinders (`bucket_angle_for`). `speed` is the ground speed, negative in
reverse. Commands are the wheel loader profile's machine functions in [-1, 1]; throttle and brake use 0..1,
direction is forward (> 0.5), neutral or reverse (< -0.5).

Payload weighing: as on real loaders, the machine computes the bucket's payload from the lift cylinder pressure
while the arm rises steadily through a reference window (`WEIGH_WINDOW`), compensating the arm's acceleration
and the cylinders' nominal seal friction. Its error is within `PAYLOAD_ERROR_BOUND_KG`: +-2 % of the rated
payload (calibration offset and friction spread, per machine) plus the pressure sensor's averaged noise.
"""

import math
from dataclasses import replace

import numpy as np

from excap.drivers.sim.angles import wrap_angle
from excap.drivers.sim.wheel_loader_geometry import (
    FUNCTIONS,
    WheelLoaderGeometry,
    WheelLoaderState,
    Yard,
    bucket_angle_for,
    bucket_edge,
    bucket_pin,
    lift_angle_for,
    lift_moment_arm,
    to_yard,
)

GRAVITY = 9.81


WEIGH_WINDOW = (-0.30, -0.05)
"""Lift angles (rad) between which a steady lift is weighed."""


def torque_converter(g: WheelLoaderGeometry, rpm: float, speed: float, direction: int, gear: int,
                     mass: float) -> tuple[float, float, float]:
    """(turbine rpm, impeller torque on the engine in N m, tractive force at the wheels in N, traction limited).

    The impeller absorbs torque with the square of engine speed, most at stall; the turbine multiplies it up to
    2.6 times at stall, falling to coupling (1:1) near a speed ratio of 0.9; past 1 (the wheels driving the
    engine) the converter brakes. In neutral the converter turns free."""
    if not direction:
        return 0.0, 0.0, 0.0
    ratio = g.gear_ratios[gear - 1] * g.final_drive
    turbine_rpm = speed / g.wheel_radius * 60.0 / (2 * math.pi) * ratio * direction
    speed_ratio = turbine_rpm / max(rpm, 1.0)
    capacity = g.converter_stall_torque / g.rated_rpm**2
    if speed_ratio <= 1.0:
        impeller = capacity * rpm**2 * min(1.5, 1.0 - speed_ratio**3)
        torque_ratio = min(3.0, max(1.0, 2.6 - 1.8 * speed_ratio))
    else:
        impeller = -capacity * rpm**2 * min(1.5, 2.0 * (speed_ratio - 1.0))
        torque_ratio = 1.0
    drive = direction * impeller * torque_ratio * ratio / g.wheel_radius * g.drivetrain_efficiency
    traction = g.traction_coefficient * mass * GRAVITY
    return turbine_rpm, impeller, max(-traction, min(traction, drive))


def ground_speed(speed: float, net_force: float, resistance: float, mass: float, dt: float) -> tuple[float, float]:
    """(speed, acceleration) after `dt`: rolling resistance and brake oppose motion, hold a machine at rest that the
    net force cannot move, and stop a machine but never reverse it."""
    if abs(speed) < 0.02 and abs(net_force) <= resistance:
        return 0.0, 0.0
    moving = speed if abs(speed) >= 0.02 else net_force
    acceleration = (net_force - math.copysign(resistance, moving)) / mass
    new_speed = speed + acceleration * dt
    if new_speed * speed < 0 and abs(net_force) <= resistance:
        return 0.0, acceleration
    return new_speed, acceleration


def _approach(value: float, target: float, dt: float, tau: float) -> float:
    return value + (target - value) * (1.0 - math.exp(-dt / tau))


class WheelLoaderModel:
    """Integrates the loader's state from machine-function commands (internally in steps of at most 5 ms)."""

    MAX_SUBSTEP = 0.005
    PRESSURE_NOISE_BAR = 1.5

    def __init__(self, geometry: WheelLoaderGeometry | None = None, seed: int = 0, yard: Yard | None = None) -> None:
        self.geometry = geometry or WheelLoaderGeometry()
        self.yard = yard or Yard()
        g = self.geometry
        self._rng = np.random.default_rng(seed)
        # Per machine: how far its lift friction and the weighing calibration are off their nominal values.
        self.friction_n = g.seal_friction_n * (1.0 + self._rng.uniform(-0.15, 0.15))
        self.calibration_offset_kg = self._rng.uniform(-0.01, 0.01) * g.rated_payload
        self._weigh: list[float] = []
        self._weigh_clean = True
        lift = lift_angle_for(1.12, g)
        self.state = WheelLoaderState(lift=lift, bucket_angle=bucket_angle_for(lift, 1.99, g))

    # -- geometry helpers ---------------------------------------------------------------------------

    def arm_inertia(self, payload: float) -> float:
        g = self.geometry
        reach = g.arm_length + g.bucket_cg
        return (g.bucket_mass + payload) * reach**2 + g.arm_mass * g.arm_length**2 / 3.0

    def static_lift_moment(self, lift: float, payload: float) -> float:
        """Gravity moment about the arm pivot (N m) of arm, bucket and payload."""
        g = self.geometry
        reach = g.arm_length * math.cos(lift)
        return GRAVITY * ((g.bucket_mass + payload) * (reach + g.bucket_cg) + g.arm_mass * reach / 2.0)

    def bucket_capacity(self, bucket_angle: float) -> float:
        """What the bucket holds at this angle before material slides out (kg)."""
        g = self.geometry
        share = max(0.0, min(1.0, (bucket_angle + 0.9) / 1.4))
        return g.rated_payload * g.heaped_share * share

    # -- integration --------------------------------------------------------------------------------

    def step(self, dt: float, commands: tuple[float, ...], enabled: bool) -> WheelLoaderState:
        substeps = max(1, math.ceil(dt / self.MAX_SUBSTEP))
        for _ in range(substeps):
            self._substep(dt / substeps, commands, enabled)
        return self.state

    def _substep(self, dt: float, commands: tuple[float, ...], enabled: bool) -> None:
        g, s, yard = self.geometry, self.state, self.yard
        raw = [max(-1.0, min(1.0, float(c))) if math.isfinite(c) else 0.0 for c in commands]
        cmd = raw if enabled else [0.0] * len(FUNCTIONS)
        lift_c, tilt_c, steer_c, throttle_c, brake_c, direction_c = cmd
        throttle_c, brake_c = max(0.0, throttle_c), max(0.0, brake_c)
        if not enabled:
            brake_c = 1.0  # hydraulics locked out: the parking brake holds the machine

        # Engine: the governor follows the pedal, drooping under load.
        flow = max(0.3, s.engine_rpm / g.rated_rpm)
        rpm_target = g.idle_rpm + throttle_c * (g.rated_rpm - g.idle_rpm) - 180.0 * s.engine_load
        rpm = _approach(s.engine_rpm, rpm_target, dt, 0.35)

        # Steering: rate limited articulation, end stops at +-40 degrees.
        steer_flow = max(0.6, flow)
        articulation_rate = _approach(s.articulation_rate, steer_c * g.articulation_rate * steer_flow, dt, 0.1)
        articulation_rate = max(-g.articulation_rate, min(g.articulation_rate, articulation_rate))
        articulation = s.articulation + articulation_rate * dt
        if abs(articulation) >= g.articulation_limit:
            articulation = math.copysign(g.articulation_limit, articulation)
            articulation_rate = 0.0

        # Loader hydraulics: cylinder speeds from the valves and the pump flow; relief stalls a lift it cannot hold.
        edge_ahead, edge_z = bucket_edge(s, g)
        edge_x, edge_y = to_yard(s, g, edge_ahead)
        depth = yard.pile_depth(edge_x, edge_y, edge_z)
        in_pile = depth > 0.0
        static = self.static_lift_moment(s.lift, s.payload) / lift_moment_arm(s.lift, g) / g.lift_area / 1e5
        breakout = 90.0 * min(1.0, depth / 1.0) if in_pile else 0.0
        lift_target = lift_c * (g.lift_speed_up if lift_c > 0 else g.lift_speed_down) * flow
        if lift_c > 0 and static + breakout * lift_c >= g.relief_bar:
            lift_target = 0.0
        if in_pile and lift_c > 0:
            lift_target *= 0.6
        tilt_target = tilt_c * g.tilt_speed * flow * (0.7 if in_pile and tilt_c > 0 else 1.0)
        lift_velocity = _approach(s.lift_velocity, lift_target, dt, g.valve_time_constant)
        tilt_velocity = _approach(s.tilt_velocity, tilt_target, dt, g.valve_time_constant)
        lift_cylinder = s.lift_cylinder + lift_velocity * dt
        if not g.lift_cylinder.low < lift_cylinder < g.lift_cylinder.high:
            lift_cylinder, lift_velocity = g.lift_cylinder.clamp(lift_cylinder), 0.0
        tilt_cylinder = s.tilt_cylinder + tilt_velocity * dt
        if not g.tilt_cylinder.low < tilt_cylinder < g.tilt_cylinder.high:
            tilt_cylinder, tilt_velocity = g.tilt_cylinder.clamp(tilt_cylinder), 0.0
        lift = lift_angle_for(lift_cylinder, g)
        lift_rate = (lift - s.lift) / dt
        lift_accel = (lift_rate - s.lift_rate) / dt
        bucket_angle = bucket_angle_for(lift, tilt_cylinder, g)
        bucket_rollback_rate = (bucket_angle - s.bucket_angle) / dt

        # Drivetrain: FNR and automatic gear by ground speed, torque converter, traction, rolling resistance, brake.
        direction = 1 if direction_c > 0.5 else -1 if direction_c < -0.5 else 0
        gear = self._shift(s, direction)
        mass = g.machine_mass + s.payload
        turbine_rpm, impeller, drive = torque_converter(g, rpm, s.speed, direction, gear, mass)
        pile_force = 110_000.0 * min(1.0, depth / 1.2) if in_pile else 0.0
        resist = g.rolling_resistance * mass * GRAVITY + brake_c * g.max_brake_force
        speed, acceleration = ground_speed(s.speed, drive - pile_force, resist, mass, dt)
        if speed > 0 and in_pile and depth > 1.6:
            speed = 0.0  # the pile face stops the bucket

        # Articulated steering kinematics: the rear axle follows the rear frame; the joint swings the heading.
        heading_rate = (speed * math.sin(articulation) + g.front_length * articulation_rate) / (
            g.front_length * math.cos(articulation) + g.rear_length)
        heading = s.heading + heading_rate * dt
        x = s.x + (speed * math.cos(heading) - g.rear_length * heading_rate * math.sin(heading)) * dt
        y = s.y + (speed * math.sin(heading) + g.rear_length * heading_rate * math.cos(heading)) * dt

        # Bucket payload: filled by crowding and rolling back in the pile, spilled beyond what the angle holds,
        # dumped into the truck when over its body.
        payload = s.payload
        if in_pile:
            crowd = max(0.0, speed) * 0.22 + max(0.0, bucket_rollback_rate) * 0.55 * min(1.0, depth / 0.5)
            crowd += max(0.0, lift_rate) * 0.25
            payload = min(g.rated_payload * g.heaped_share * 1.05, payload + g.rated_payload * crowd * dt)
        truck_payload, spilled, dumped = s.truck_payload, s.spilled, s.dumped_loads
        holds = self.bucket_capacity(bucket_angle)
        if not in_pile and payload > g.rated_payload and abs(acceleration) > 1.0:
            # a jolt shakes off part of a heap above the bucket's struck capacity
            holds = min(holds, payload - (payload - g.rated_payload) * 0.4 * abs(acceleration) * dt)
        if payload > holds:
            lost = min(payload - holds, g.rated_payload * 2.5 * dt)
            payload -= lost
            _, pin_z = bucket_pin(s, g)
            over_truck = yard.over_truck(*to_yard(s, g, edge_ahead))  # material leaves over the cutting edge
            if over_truck and pin_z > yard.truck_side_height:
                truck_payload += lost
            else:
                spilled += lost
            if over_truck and payload < 0.05 * g.rated_payload <= s.payload:
                dumped += 1  # a bucket emptied over the truck

        # Pressures: static load through the arm geometry, dynamic terms, friction, relief.
        arm = lift_moment_arm(lift, g)
        inertia = self.arm_inertia(payload)
        friction = math.copysign(self.friction_n, lift_rate) if abs(lift_rate) > 1e-3 else 0.0
        lift_force = (self.static_lift_moment(lift, payload) + inertia * lift_accel) / arm + friction
        noise = self._rng.normal(0.0, self.PRESSURE_NOISE_BAR, 4)
        relief = g.relief_bar
        lift_head = lift_force / g.lift_area / 1e5 + breakout * max(0.0, lift_c)
        lift_head = max(0.0, min(relief, lift_head + float(noise[0])))
        lift_rod = max(0.0, min(relief, 15.0 + 120.0 * max(0.0, -lift_c) * (1.0 if in_pile else 0.3) + float(noise[1])))
        tilt_moment = GRAVITY * (g.bucket_mass + payload) * g.bucket_cg * math.cos(bucket_angle)
        tilt_head = tilt_moment / g.tilt_lever / g.tilt_area / 1e5 + 20.0 + (
            220.0 * min(1.0, depth / 0.8) * max(0.0, tilt_c) if in_pile else 0.0)
        tilt_head = max(0.0, min(relief, tilt_head + float(noise[2])))
        tilt_rod = max(0.0, min(relief, 15.0 + 60.0 * max(0.0, -tilt_c) + float(noise[3])))
        measured_lift = lift_head

        # Engine load from the converter and the pumps.
        hydraulic_torque = (lift_head * abs(lift_velocity) * g.lift_area + tilt_head * abs(tilt_velocity)
                            * g.tilt_area) * 1e5 / max(rpm * 2 * math.pi / 60.0, 1.0) / 0.85
        engine_load = max(0.06, min(1.0, (max(0.0, impeller) + hydraulic_torque + 60.0) / g.max_engine_torque))
        fuel_rate = 3.5 + 38.0 * engine_load * rpm / g.rated_rpm

        estimate, total, weighed = self._weigh_step(s, lift, lift_rate, lift_accel, measured_lift)
        if dumped > s.dumped_loads:
            total += estimate
            estimate = 0.0

        self.state = replace(
            s, t=s.t + dt, x=x, y=y, heading=heading, articulation=articulation,
            articulation_rate=articulation_rate, speed=speed, acceleration=acceleration,
            lift_cylinder=lift_cylinder, tilt_cylinder=tilt_cylinder, lift_velocity=lift_velocity,
            tilt_velocity=tilt_velocity, lift=lift, lift_rate=lift_rate, lift_accel=lift_accel,
            bucket_angle=bucket_angle, bucket_rate=bucket_rollback_rate, wheel_rate=speed / g.wheel_radius,
            wheel_angle=wrap_angle(s.wheel_angle + speed / g.wheel_radius * dt), lift_head_pressure=lift_head,
            lift_rod_pressure=lift_rod,
            tilt_head_pressure=tilt_head, tilt_rod_pressure=tilt_rod, engine_rpm=rpm, engine_load=engine_load,
            fuel_rate=fuel_rate, fuel_level=max(0.0, s.fuel_level - fuel_rate * dt / 3600.0 / 3.0),
            engine_hours=s.engine_hours + dt / 3600.0,
            coolant_temp=_approach(s.coolant_temp, 85.0 + 6.0 * engine_load, dt, 300.0),
            hydraulic_temp=_approach(s.hydraulic_temp, 52.0 + 10.0 * engine_load, dt, 600.0),
            transmission_temp=_approach(s.transmission_temp, 75.0 + 12.0 * engine_load, dt, 400.0),
            direction=direction, gear=gear, turbine_rpm=turbine_rpm, payload=max(0.0, payload), pile_depth=depth,
            payload_estimate=estimate, payload_total=total, weighed_buckets=weighed, dumped_loads=dumped,
            truck_payload=truck_payload, spilled=spilled, commands=tuple(raw), enabled=enabled)

    def _shift(self, s: WheelLoaderState, direction: int) -> int:
        g = self.geometry
        if direction != s.direction:
            return 1
        top = len(g.gear_ratios) if direction > 0 else g.max_reverse_gear
        speed, gear = abs(s.speed), s.gear
        if gear < top and speed > g.upshift_speed[gear - 1]:
            return gear + 1
        if gear > 1 and speed < g.downshift_speed[gear - 2]:
            return gear - 1
        return gear

    def _weigh_step(self, s: WheelLoaderState, lift: float, lift_rate: float, lift_accel: float,
                    pressure: float) -> tuple[float, float, int]:
        """The machine's payload weighing: average the payload that the lift pressure implies over a steady lift
        through the window; publish it when the arm leaves the window at the top."""
        g = self.geometry
        estimate, total, weighed = s.payload_estimate, s.payload_total, s.weighed_buckets
        low, high = WEIGH_WINDOW
        if low <= lift <= high and lift_rate > 0.05:
            if abs(lift_accel) < 0.3 and pressure < g.relief_bar - 1.0:
                moment = (pressure * 1e5 * g.lift_area - g.seal_friction_n) * lift_moment_arm(lift, g)
                empty = self.static_lift_moment(lift, 0.0)
                reach = g.arm_length * math.cos(lift) + g.bucket_cg
                quasi_static = max(0.0, (moment - empty) / (GRAVITY * reach))
                moment -= self.arm_inertia(quasi_static) * lift_accel
                self._weigh.append((moment - empty) / (GRAVITY * reach))
            else:
                self._weigh_clean = False  # a jerky lift or a lift at relief cannot be weighed
        elif lift > high and s.lift <= high and self._weigh:
            if self._weigh_clean and len(self._weigh) >= 10:
                estimate = max(0.0, float(np.mean(self._weigh)) + self.calibration_offset_kg)
                weighed += 1
            self._weigh, self._weigh_clean = [], True
        elif lift < low:
            self._weigh, self._weigh_clean = [], True
        return estimate, total, weighed


PAYLOAD_ERROR_BOUND_KG = 0.02 * WheelLoaderGeometry().rated_payload + 45.0
"""A weighed bucket is within this of its true payload: +-2 % of rated payload (calibration and friction spread)
plus three standard deviations of the averaged pressure noise."""
