"""Stick positions -> machine-function commands, through a profile's control pattern.

Shaping per axis: a deadband around centre, then an expo curve
`out = (1 - expo) * x + expo * x**3` on the rescaled value. `stick_for_command` is the exact
inverse, used by the scripted operator and by tests.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drivers.profiles import ControlPattern, MachineProfile


def shape_axis(value: float, deadband: float, expo: float) -> float:
    x = min(1.0, max(-1.0, float(value)))
    magnitude = abs(x)
    if magnitude <= deadband:
        return 0.0
    scaled = (magnitude - deadband) / (1.0 - deadband)
    curved = (1.0 - expo) * scaled + expo * scaled**3
    return float(np.copysign(curved, x))


def unshape_axis(command: float, deadband: float, expo: float) -> float:
    """Stick position that `shape_axis` turns into `command` (the smallest one past the deadband)."""
    target = min(1.0, max(-1.0, float(command)))
    magnitude = abs(target)
    if magnitude == 0.0:
        return 0.0
    low, high = 0.0, 1.0  # solve (1-e)s + e s^3 = magnitude; monotonic in s
    for _ in range(60):
        mid = (low + high) / 2
        if (1.0 - expo) * mid + expo * mid**3 < magnitude:
            low = mid
        else:
            high = mid
    stick = deadband + high * (1.0 - deadband)
    return float(np.copysign(stick, target))


@dataclass(frozen=True)
class MachineCommand:
    values: tuple[float, ...]  # in the profile's function order
    enabled: bool


class CommandMapper:
    """Maps normalised axes and buttons to machine-function commands for one pattern."""

    def __init__(self, profile: MachineProfile, pattern: str | None = None) -> None:
        self.profile = profile
        self.pattern: ControlPattern = profile.pattern(pattern)
        self._axis_index = {name: i for i, name in enumerate(profile.axes)}
        self._enable_index = profile.buttons.index(profile.enable_button)
        self._routes = [(self._axis_index[self.pattern.bindings[f].axis], self.pattern.bindings[f].sign)
                        for f in profile.functions]

    def command(self, axes: Sequence[float], buttons: Sequence[int]) -> MachineCommand:
        enabled = bool(buttons[self._enable_index])
        if not enabled:
            return MachineCommand(tuple(0.0 for _ in self._routes), False)
        values = tuple(sign * shape_axis(axes[index], self.profile.deadband, self.profile.expo)
                       for index, sign in self._routes)
        return MachineCommand(values, True)

    def sticks_for(self, commands: Sequence[float]) -> list[float]:
        """Axis positions an operator holds to produce `commands` (profile function order)."""
        axes = [0.0] * len(self.profile.axes)
        for (index, sign), value in zip(self._routes, commands, strict=True):
            axes[index] = unshape_axis(value * sign, self.profile.deadband, self.profile.expo)
        return axes
