"""The simulated machine's J1939 traffic: every DBC message at its cycle time, encoded by cantools.

The generator is the same for every machine kind; what each message carries comes from the kind's message-values
function (`MessageValues`, named in `excap.drivers.sim.machines`), which raises KeyError for a message it cannot
simulate.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
import cantools
import numpy as np
from cantools.database.can import Database, Message

from excap.core.errors import ConfigError

SignalValues = dict[str, float]
MessageValues = Callable[[str, Any, np.random.Generator], SignalValues]
"""(message name, machine state, noise generator) -> signal values; KeyError for an unknown message."""


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

    def __init__(self, dbc_path: Path, start_ns: int, values: MessageValues, seed: int = 0) -> None:
        database = cantools.database.load_file(str(dbc_path))
        if not isinstance(database, Database):
            raise ConfigError(f"{dbc_path}: not a CAN database")
        self.database = database
        self._values = values
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

    def due(self, t_ns: int, state: Any) -> list[can.Message]:
        """The frames due by `t_ns`, in the order they fell due (a late call sends them as the ECUs would have)."""
        frames = []
        for schedule in sorted((s for s in self._schedules if s.next_ns <= t_ns), key=lambda s: s.next_ns):
            # Catch up without bursting if the caller fell far behind (e.g. a paused process).
            missed = (t_ns - schedule.next_ns) // schedule.period_ns
            schedule.next_ns += (missed + 1) * schedule.period_ns
            message = schedule.message
            data = message.encode(_clamped(message, self._values(message.name, state, self._rng)),
                                  scaling=True, padding=True, strict=False)
            frames.append(can.Message(arbitration_id=message.frame_id, is_extended_id=True, data=data))
        return frames

    def next_due_ns(self) -> int:
        return min(s.next_ns for s in self._schedules)
