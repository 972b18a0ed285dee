"""Stick positions -> machine-function commands, through a profile's control pattern.

Shaping per axis: a deadband around centre, then an expo curve
`out = (1 - expo) * x + expo * x**3` on the rescaled value. `stick_for_command` is the exact
inverse, used by the scripted operator and by tests.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from excap.drivers.machine.profiles import ButtonBinding, ControlPattern, MachineProfile


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
        button_index = {name: i for i, name in enumerate(profile.buttons)}
        self._routes: list[tuple[str, int, float | int | None]] = []
        for function in profile.functions:
            binding = self.pattern.bindings[function]
            if isinstance(binding, ButtonBinding):
                negative = button_index[binding.negative] if binding.negative else None
                self._routes.append(("buttons", button_index[binding.positive], negative))
            else:
                self._routes.append(("axis", self._axis_index[binding.axis], binding.sign))

    def _value(self, route: tuple[str, int, float | int | None], axes: Sequence[float],
               buttons: Sequence[int]) -> float:
        kind, index, extra = route
        if kind == "buttons":
            positive = bool(buttons[index])
            negative = extra is not None and bool(buttons[int(extra)])
            return float(positive) - float(negative)
        return float(extra) * shape_axis(axes[index], self.profile.deadband, self.profile.expo)  # type: ignore[arg-type]

    def command(self, axes: Sequence[float], buttons: Sequence[int]) -> MachineCommand:
        enabled = bool(buttons[self._enable_index])
        if not enabled:
            return MachineCommand(tuple(0.0 for _ in self._routes), False)
        return MachineCommand(tuple(self._value(route, axes, buttons) for route in self._routes), True)

    def sticks_for(self, commands: Sequence[float]) -> list[float]:
        """Axis positions an operator holds to produce `commands` (profile function order).

        Button-driven functions (forward-neutral-reverse) have no axis and are left out.
        """
        axes = [0.0] * len(self.profile.axes)
        for (kind, index, sign), value in zip(self._routes, commands, strict=True):
            if kind == "axis":
                axes[index] = unshape_axis(value * float(sign), self.profile.deadband, self.profile.expo)  # type: ignore[arg-type]
        return axes
