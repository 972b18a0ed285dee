"""What the simulated wheel loader's ECUs report: the signal values of each message of its DBC for a machine state
(`schemas/can/wheel_loader_j1939.dbc`)."""

import math

import numpy as np

from excap.drivers.sim.engine_signals import engine_message_values
from excap.drivers.sim.j1939_traffic import SignalValues
from excap.drivers.sim.wheel_loader_geometry import WheelLoaderGeometry, WheelLoaderState

_GEOMETRY = WheelLoaderGeometry()
_TRAVEL_DIRECTION = {0: 0, 1: 1, -1: 2}  # LoaderTravel.TravelDirection: neutral, forward, reverse


def wheel_loader_message_values(name: str, s: WheelLoaderState, rng: np.random.Generator) -> SignalValues:
    """The signal values of one message of the wheel loader's DBC for a machine state."""
    torque = 8 + 85 * s.engine_load
    shared = engine_message_values(name, s, rng, torque)
    if shared is not None:
        return shared
    throttle, brake = s.throttle_pedal, s.brake_pedal
    match name:
        case "EEC2":
            return {"AccelPedalPos1": 100.0 * throttle, "EngPercentLoadAtCurrentSpd": 100 * s.engine_load}
        case "ET1":
            return {"EngCoolantTemp": round(s.coolant_temp), "EngFuelTemp1": round(s.coolant_temp - 22),
                    "EngOilTemp1": s.coolant_temp + 5.0}
        case "TRF1":
            return {"TransOilTemp1": s.transmission_temp}
        case "ETC2":
            top = len(_GEOMETRY.gear_ratios) if s.direction > 0 else _GEOMETRY.max_reverse_gear
            return {"TransSelectedGear": s.direction * top, "TransCurrentGear": s.selected_gear,
                    "TransActualGearRatio": _GEOMETRY.gear_ratios[s.gear - 1] if s.direction else 0.0}
        case "CCVS1":
            return {"WheelBasedVehicleSpeed": abs(s.speed) * 3.6, "ParkingBrakeSwitch": 0 if s.enabled else 1,
                    "BrakeSwitch": 1 if brake > 0.05 else 0}
        case "EBC1":
            return {"BrakePedalPos": 100.0 * brake}
        case "LoaderArticulation":
            return {"ArticulationAngle": math.degrees(s.articulation) + rng.normal(0, 0.03),
                    "ArticulationRate": math.degrees(s.articulation_rate)}
        case "LoaderLinkage":
            return {"LiftAngle": math.degrees(s.lift) + rng.normal(0, 0.03),
                    "BucketAngle": math.degrees(s.bucket_angle) + rng.normal(0, 0.03),
                    "LiftCylinderLength": 1000 * s.lift_cylinder, "TiltCylinderLength": 1000 * s.tilt_cylinder}
        case "LoaderPressures":
            return {"LiftHeadPressure": s.lift_head_pressure, "LiftRodPressure": s.lift_rod_pressure,
                    "TiltHeadPressure": s.tilt_head_pressure, "TiltRodPressure": s.tilt_rod_pressure}
        case "LoaderPayload":
            return {"BucketPayload": round(s.payload_estimate), "AccumulatedPayload": round(s.payload_total),
                    "WeighedBuckets": s.weighed_buckets % 251}
        case "LoaderTravel":
            return {"GroundSpeed": s.speed, "TravelDirection": _TRAVEL_DIRECTION[s.direction]}
    raise KeyError(name)
