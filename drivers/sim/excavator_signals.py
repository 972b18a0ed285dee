"""What the simulated excavator's ECUs report: the signal values of each message of its DBC for a machine state."""

import math
from collections.abc import Callable

import numpy as np

from excap.drivers.sim.angles import wrap_angle
from excap.drivers.sim.engine_signals import engine_message_values
from excap.drivers.sim.excavator import ExcavatorState
from excap.drivers.sim.j1939_traffic import SignalValues


def _ssi2(pitch_rad: float, roll_deg: float = 0.0) -> Callable[[ExcavatorState, np.random.Generator], SignalValues]:
    def values(_: ExcavatorState, rng: np.random.Generator) -> SignalValues:
        # An inclinometer reports its absolute pitch within one turn, [-180, 180) degrees.
        return {"PitchAngleExRange": math.degrees(wrap_angle(pitch_rad)) + rng.normal(0, 0.02),
                "RollAngleExRange": roll_deg + rng.normal(0, 0.02),
                "PitchAngleFigureOfMerit": 0, "RollAngleFigureOfMerit": 0, "MeasurementLatency": 5.0}
    return values


def excavator_message_values(name: str, s: ExcavatorState, rng: np.random.Generator) -> SignalValues:
    """The signal values of one message of `schemas/can/excavator_j1939.dbc` for a machine state."""
    torque = 10 + 80 * s.engine_load
    shared = engine_message_values(name, s, rng, torque)
    if shared is not None:
        return shared
    match name:
        case "EEC2":
            return {"AccelPedalPos1": 100.0 if s.engine_rpm > 1400 else 0.0,
                    "EngPercentLoadAtCurrentSpd": 100 * s.engine_load}
        case "ET1":
            return {"EngCoolantTemp": round(s.coolant_temp), "EngFuelTemp1": round(s.coolant_temp - 20),
                    "EngOilTemp1": s.coolant_temp + 6.0}
        case "EFL_P1":
            return {"EngOilPressure": 200 + 200 * s.engine_rpm / 1800, "EngCoolantLevel": 96.0}
        case "BoomSSI2":
            return _ssi2(s.boom)(s, rng)
        case "ArmSSI2":
            return _ssi2(s.arm_absolute)(s, rng)
        case "BucketSSI2":
            return _ssi2(s.bucket_absolute)(s, rng)
        case "UpperSSI2":
            return _ssi2(math.radians(0.8), 0.3)(s, rng)
        case "SwingStatus":
            return {"SwingAngle": math.degrees(wrap_angle(s.swing)), "SwingRate": math.degrees(s.swing_rate),
                    "SwingBrake": 0 if abs(s.swing_rate) > 0.01 else 1}
        case "HydraulicPressures1":
            return {"PumpPressure1": s.pump1, "PumpPressure2": s.pump2,
                    "BoomHeadPressure": s.boom_head, "BoomRodPressure": s.boom_rod}
        case "HydraulicPressures2":
            return {"ArmHeadPressure": s.arm_head, "ArmRodPressure": s.arm_rod,
                    "BucketHeadPressure": s.bucket_head, "BucketRodPressure": s.bucket_rod}
        case "TravelStatus":
            return {"LeftTrackSpeed": s.left_track, "RightTrackSpeed": s.right_track, "TravelSpeedMode": 0}
    raise KeyError(name)
