"""The engine ECU messages every simulated machine sends the same way (EEC1, LFE1, DD1, HOURS, VF)."""

from typing import Protocol

import numpy as np

from excap.drivers.sim.j1939_traffic import SignalValues


class EngineState(Protocol):
    @property
    def engine_rpm(self) -> float: ...
    @property
    def fuel_rate(self) -> float: ...
    @property
    def fuel_level(self) -> float: ...
    @property
    def engine_hours(self) -> float: ...
    @property
    def hydraulic_temp(self) -> float: ...


def engine_message_values(name: str, s: EngineState, rng: np.random.Generator, torque: float) -> SignalValues | None:
    """The signal values of a shared engine message, or None if `name` is none of them."""
    match name:
        case "EEC1":
            return {"EngTorqueMode": 0, "DriversDemandEngPercentTorque": torque, "ActualEngPercentTorque": torque,
                    "EngSpeed": s.engine_rpm + rng.normal(0, 1.5), "SrcAddrssOfCtrllngDvcForEngCtrl": 0x27,
                    "EngStarterMode": 0, "EngDemandPercentTorque": torque}
        case "LFE1":
            return {"EngFuelRate": s.fuel_rate}
        case "DD1":
            return {"FuelLevel1": s.fuel_level}
        case "HOURS":
            return {"EngTotalHoursOfOperation": s.engine_hours}
        case "VF":
            return {"HydraulicTemp": round(s.hydraulic_temp)}
    return None


__all__ = ["EngineState", "engine_message_values"]
