"""The 20 t class articulated wheel loader's geometry and pose: dimensions and masses (`WheelLoaderGeometry`), the
yard it works in (`Yard`), its state (`WheelLoaderState`), and where its arm, bucket and axle are for a state (the
frames and signs are those of excap.drivers.sim.wheel_loader)."""

import math
from dataclasses import dataclass

FUNCTIONS = ("lift", "tilt", "steer", "throttle", "brake", "direction")


@dataclass(frozen=True)
class Range:
    low: float
    high: float

    def clamp(self, value: float) -> float:
        return max(self.low, min(self.high, value))


@dataclass(frozen=True)
class WheelLoaderGeometry:
    front_length: float = 1.65  # articulation joint to front axle (m)
    rear_length: float = 1.65  # articulation joint to rear axle (m)
    wheel_radius: float = 0.8
    articulation_limit: float = math.radians(40.0)
    articulation_rate: float = 0.45  # rad/s at full steer
    lift_pivot: tuple[float, float] = (-0.3, 2.1)  # lift arm pivot from the front axle: forward, up (m)
    arm_length: float = 3.1  # pivot to bucket pin
    lift_anchor: tuple[float, float] = (0.15, -1.25)  # lift cylinders' frame anchor from the arm pivot
    lift_lug: float = 1.3  # lift cylinders' arm attachment, along the arm from the pivot
    lift_cylinder: Range = Range(1.06, 2.33)  # cylinder length stroke (m)
    tilt_cylinder: Range = Range(1.60, 2.40)
    lift_speed_up: float = 0.26  # m/s cylinder speed at full command and rated engine speed
    lift_speed_down: float = 0.34
    tilt_speed: float = 0.40
    tilt_gain: float = 2.8  # rad of bucket angle per metre of tilt cylinder
    tilt_reference: float = 1.955  # tilt cylinder length giving a level bucket on the ground
    bucket_reach: float = 1.4  # bucket pin to cutting edge (m)
    bucket_edge_angle: float = -0.25  # edge below the pin when the floor is level (rad)
    bucket_cg: float = 0.7  # bucket (and load) centre of gravity ahead of the pin (m)
    lift_area: float = 2 * math.pi * 0.07**2  # two lift cylinders, 140 mm bore (m^2)
    tilt_area: float = math.pi * 0.10**2  # one tilt cylinder, 200 mm bore
    tilt_lever: float = 0.6  # effective lever of the tilt linkage about the bucket pin (m)
    relief_bar: float = 250.0
    seal_friction_n: float = 8000.0  # nominal lift cylinder friction
    machine_mass: float = 20000.0  # kg, operating mass without payload
    bucket_mass: float = 1800.0
    arm_mass: float = 2500.0
    rated_payload: float = 6000.0  # kg
    heaped_share: float = 1.15  # a heaped bucket holds this share of the rated payload
    idle_rpm: float = 800.0
    rated_rpm: float = 2100.0
    max_engine_torque: float = 1000.0  # N m
    converter_stall_torque: float = 900.0  # impeller torque at stall and rated speed (N m)
    gear_ratios: tuple[float, ...] = (4.5, 2.5, 1.3, 0.75)
    final_drive: float = 22.0
    drivetrain_efficiency: float = 0.85
    max_reverse_gear: int = 3
    upshift_speed: tuple[float, ...] = (1.5, 3.0, 5.5)  # m/s: 1->2, 2->3, 3->4
    downshift_speed: tuple[float, ...] = (1.1, 2.3, 4.5)  # m/s: 2->1, 3->2, 4->3
    traction_coefficient: float = 0.65
    rolling_resistance: float = 0.025
    max_brake_force: float = 160_000.0  # N
    valve_time_constant: float = 0.12


@dataclass(frozen=True)
class Yard:
    """The work area: a stockpile whose face is the line x = pile_x, and a truck body (a rectangle)."""

    pile_x: float = 9.0
    pile_half_width: float = 5.0
    pile_slope: float = 0.7  # height gained per metre into the pile
    pile_height: float = 3.0
    truck_centre: tuple[float, float] = (6.6, -9.4)
    truck_heading: float = math.radians(30.0)  # the body's long axis
    truck_length: float = 6.5
    truck_width: float = 2.5
    truck_side_height: float = 3.0

    def pile_depth(self, x: float, y: float, z: float) -> float:
        """How far a point is inside the pile (metres past its face; 0 outside)."""
        depth = x - self.pile_x
        if depth <= 0.0 or abs(y) > self.pile_half_width:
            return 0.0
        return depth if z < min(self.pile_height, depth * self.pile_slope + 0.4) else 0.0

    def truck_local(self, x: float, y: float) -> tuple[float, float]:
        """A point in the truck body's frame: along its long axis, across it."""
        dx, dy = x - self.truck_centre[0], y - self.truck_centre[1]
        c, s = math.cos(self.truck_heading), math.sin(self.truck_heading)
        return dx * c + dy * s, -dx * s + dy * c

    def over_truck(self, x: float, y: float) -> bool:
        along, across = self.truck_local(x, y)
        return abs(along) <= self.truck_length / 2 and abs(across) <= self.truck_width / 2

    def truck_corners(self) -> list[tuple[float, float]]:
        c, s = math.cos(self.truck_heading), math.sin(self.truck_heading)
        half_l, half_w = self.truck_length / 2, self.truck_width / 2
        cx, cy = self.truck_centre
        return [(cx + a * c - b * s, cy + a * s + b * c)
                for a, b in ((-half_l, -half_w), (half_l, -half_w), (half_l, half_w), (-half_l, half_w))]


@dataclass(frozen=True)
class WheelLoaderState:
    t: float = 0.0
    x: float = 0.0
    y: float = 0.0
    heading: float = 0.0
    articulation: float = 0.0
    articulation_rate: float = 0.0
    speed: float = 0.0
    acceleration: float = 0.0
    lift_cylinder: float = 1.12
    tilt_cylinder: float = 1.99
    lift_velocity: float = 0.0  # cylinder m/s
    tilt_velocity: float = 0.0
    lift: float = -0.56
    lift_rate: float = 0.0
    lift_accel: float = 0.0
    bucket_angle: float = 0.0
    bucket_rate: float = 0.0  # rad/s, rolling back +
    wheel_angle: float = 0.0  # rad, the wheels' rotation (forward +), wrapped to -pi .. pi
    wheel_rate: float = 0.0  # rad/s
    lift_head_pressure: float = 40.0  # bar
    lift_rod_pressure: float = 15.0
    tilt_head_pressure: float = 30.0
    tilt_rod_pressure: float = 15.0
    engine_rpm: float = 800.0
    engine_load: float = 0.1
    fuel_rate: float = 4.0
    fuel_level: float = 81.0
    engine_hours: float = 6120.4
    coolant_temp: float = 70.0
    hydraulic_temp: float = 45.0
    transmission_temp: float = 60.0
    direction: int = 0  # +1 forward, 0 neutral, -1 reverse
    gear: int = 1  # 1..4 within the direction
    turbine_rpm: float = 0.0
    payload: float = 0.0  # kg in the bucket (truth)
    pile_depth: float = 0.0
    payload_estimate: float = 0.0  # kg, the machine's weighing of the current bucket (0 until weighed)
    payload_total: float = 0.0  # kg, accumulated weighed payload dumped
    weighed_buckets: int = 0
    dumped_loads: int = 0
    truck_payload: float = 0.0  # kg really in the truck (truth)
    spilled: float = 0.0  # kg lost on the ground (truth)
    commands: tuple[float, ...] = (0.0,) * len(FUNCTIONS)
    enabled: bool = False

    @property
    def front_heading(self) -> float:
        return self.heading + self.articulation

    @property
    def throttle_pedal(self) -> float:
        """Accelerator pedal 0..1 (as commanded)."""
        return max(0.0, self.commands[3])

    @property
    def brake_pedal(self) -> float:
        """Service brake pedal 0..1 (as commanded)."""
        return max(0.0, self.commands[4])

    @property
    def selected_gear(self) -> int:
        """Signed gear, J1939 style: positive forward, negative reverse, 0 neutral."""
        return self.direction * self.gear


def lift_angle_for(cylinder: float, g: WheelLoaderGeometry) -> float:
    """Lift arm angle to horizontal for a lift cylinder length (law of cosines in the pivot triangle)."""
    a = math.hypot(*g.lift_anchor)
    b = g.lift_lug
    cosine = max(-1.0, min(1.0, (a * a + b * b - cylinder * cylinder) / (2 * a * b)))
    return math.acos(cosine) + math.atan2(g.lift_anchor[1], g.lift_anchor[0])


def lift_moment_arm(lift: float, g: WheelLoaderGeometry) -> float:
    """Perpendicular distance from the arm pivot to the lift cylinders' line (m)."""
    a = math.hypot(*g.lift_anchor)
    b = g.lift_lug
    angle = lift - math.atan2(g.lift_anchor[1], g.lift_anchor[0])
    cylinder = math.sqrt(max(1e-9, a * a + b * b - 2 * a * b * math.cos(angle)))
    return a * b * math.sin(angle) / cylinder


def bucket_angle_for(lift: float, tilt_cylinder: float, g: WheelLoaderGeometry) -> float:
    """Bucket floor angle to ground through the Z-bar linkage: the tilt cylinder sets it, and with the tilt
    cylinder held the linkage keeps the bucket nearly level as the arm rises (parallel-lift share ~90 % at mid
    height, less towards the ends, so the bucket rolls back a little at the top)."""
    parallel_share = 0.9 - 0.3 * lift * lift
    return g.tilt_gain * (tilt_cylinder - g.tilt_reference) + lift * (1.0 - parallel_share) - 0.125


def bucket_pin(state: WheelLoaderState, g: WheelLoaderGeometry) -> tuple[float, float]:
    """Bucket pin ahead of the front axle and above the ground (m)."""
    px, pz = g.lift_pivot
    return px + g.arm_length * math.cos(state.lift), pz + g.arm_length * math.sin(state.lift)


def bucket_edge(state: WheelLoaderState, g: WheelLoaderGeometry) -> tuple[float, float]:
    """Cutting edge ahead of the front axle and above the ground (m)."""
    x, z = bucket_pin(state, g)
    angle = state.bucket_angle + g.bucket_edge_angle
    return x + g.bucket_reach * math.cos(angle), z + g.bucket_reach * math.sin(angle)


def front_axle(state: WheelLoaderState, g: WheelLoaderGeometry) -> tuple[float, float]:
    heading = state.front_heading
    return state.x + g.front_length * math.cos(heading), state.y + g.front_length * math.sin(heading)


def to_yard(state: WheelLoaderState, g: WheelLoaderGeometry, ahead: float) -> tuple[float, float]:
    """The yard point `ahead` metres in front of the front axle, on the front frame's centre line."""
    fx, fy = front_axle(state, g)
    heading = state.front_heading
    return fx + ahead * math.cos(heading), fy + ahead * math.sin(heading)
