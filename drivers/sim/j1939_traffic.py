"""The simulated machine's J1939 traffic: every DBC message at its cycle time, encoded by cantools."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import can
import cantools
import numpy as np
from cantools.database.can import Database, Message

from excap.core.errors import ConfigError
from excap.drivers.sim.excavator import ExcavatorState, wrap_angle

SignalValues = dict[str, float]


def _ssi2(pitch_rad: float, roll_deg: float = 0.0) -> Callable[[ExcavatorState, np.random.Generator], SignalValues]:
    def values(_: ExcavatorState, rng: np.random.Generator) -> SignalValues:
        # An inclinometer reports its absolute pitch within one turn, [-180, 180) degrees.
        return {"PitchAngleExRange": math.degrees(wrap_angle(pitch_rad)) + rng.normal(0, 0.02),
                "RollAngleExRange": roll_deg + rng.normal(0, 0.02),
                "PitchAngleFigureOfMerit": 0, "RollAngleFigureOfMerit": 0, "MeasurementLatency": 5.0}
    return values


def _message_values(name: str, s: ExcavatorState, rng: np.random.Generator) -> SignalValues:
    torque = 10 + 80 * s.engine_load
    match name:
        case "EEC1":
            return {"EngTorqueMode": 0, "DriversDemandEngPercentTorque": torque, "ActualEngPercentTorque": torque,
                    "EngSpeed": s.engine_rpm + rng.normal(0, 1.5), "SrcAddrssOfCtrllngDvcForEngCtrl": 0x27,
                    "EngStarterMode": 0, "EngDemandPercentTorque": torque}
        case "EEC2":
            return {"AccelPedalPos1": 100.0 if s.engine_rpm > 1400 else 0.0,
                    "EngPercentLoadAtCurrentSpd": 100 * s.engine_load}
        case "ET1":
            return {"EngCoolantTemp": round(s.coolant_temp), "EngFuelTemp1": round(s.coolant_temp - 20),
                    "EngOilTemp1": s.coolant_temp + 6.0}
        case "EFL_P1":
            return {"EngOilPressure": 200 + 200 * s.engine_rpm / 1800, "EngCoolantLevel": 96.0}
        case "LFE1":
            return {"EngFuelRate": s.fuel_rate}
        case "DD1":
            return {"FuelLevel1": s.fuel_level}
        case "HOURS":
            return {"EngTotalHoursOfOperation": s.engine_hours}
        case "VF":
            return {"HydraulicTemp": round(s.hydraulic_temp)}
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


def _clamped(message: Message, values: SignalValues) -> SignalValues:
    out = {}
    for signal in message.signals:
        value = values.get(signal.name, 0)
        low = signal.minimum if signal.minimum is not None else value
        high = signal.maximum if signal.maximum is not None else value
        out[signal.name] = min(max(value, low), high)
    return out


@dataclass
class _Schedule:
    message: Message
    period_ns: int
    next_ns: int


class J1939TrafficGenerator:
    """Yields the frames due at a time; each message runs on its own phase, as separate ECUs do."""

    def __init__(self, dbc_path: Path, start_ns: int, seed: int = 0) -> None:
        database = cantools.database.load_file(str(dbc_path))
        if not isinstance(database, Database):
            raise ConfigError(f"{dbc_path}: not a CAN database")
        self.database = database
        self._rng = np.random.default_rng(seed)
        self._schedules = []
        for message in self.database.messages:
            if not message.cycle_time:
                continue
            period = int(message.cycle_time * 1_000_000)
            phase = int(self._rng.integers(0, period))
            self._schedules.append(_Schedule(message, period, start_ns + phase))

    @property
    def nominal_rate_hz(self) -> float:
        return sum(1e9 / s.period_ns for s in self._schedules)

    def due(self, t_ns: int, state: ExcavatorState) -> list[can.Message]:
        frames = []
        for schedule in self._schedules:
            if schedule.next_ns > t_ns:
                continue
            # Catch up without bursting if the caller fell far behind (e.g. a paused process).
            missed = (t_ns - schedule.next_ns) // schedule.period_ns
            schedule.next_ns += (missed + 1) * schedule.period_ns
            message = schedule.message
            data = message.encode(_clamped(message, _message_values(message.name, state, self._rng)),
                                  scaling=True, padding=True, strict=False)
            frames.append(can.Message(arbitration_id=message.frame_id, is_extended_id=True, data=data))
        return frames

    def next_due_ns(self) -> int:
        return min(s.next_ns for s in self._schedules)
