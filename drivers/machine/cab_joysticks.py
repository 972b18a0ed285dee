"""How a machine's own cab joysticks talk J1939, for both ends of the command path.

The station sends machine-function commands as the cab joysticks would (BJM1 frames, one source
address per joystick); the machine (or the simulated one) reads them back into functions. The
layout lives in the machine profile (`cab_joysticks:`), so the wire format is the machine's own,
whatever control pattern the remote operator uses.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import can

from excap.core.errors import ConfigError
from excap.drivers.can.joystick_messages import BJM1_PGN, BUTTONS, decode_joystick_frame, encode_bjm1
from excap.drivers.limits import BJM1_BUTTON, COMMAND_RATE_HZ, SOURCE_ADDRESS, check_sign


@dataclass(frozen=True)
class CabAxis:
    function: str
    sign: float  # axis = sign * function command, and back: exactly +1 or -1

    def __post_init__(self) -> None:
        check_sign(self.sign, f"cab joystick axis {self.function}: sign")


@dataclass(frozen=True)
class CabJoystick:
    name: str
    source_address: int
    x: CabAxis | None
    y: CabAxis | None


@dataclass(frozen=True)
class CabJoystickLayout:
    rate_hz: float
    joysticks: tuple[CabJoystick, ...]
    enable_joystick: str
    enable_button: int  # 1-based J1939 button number

    def __post_init__(self) -> None:
        COMMAND_RATE_HZ.check(self.rate_hz, "cab_joysticks.rate_hz")
        BJM1_BUTTON.check(self.enable_button, "cab_joysticks.enable.button")
        names = [j.name for j in self.joysticks]
        if not names:
            raise ConfigError("cab_joysticks.joysticks: must list at least one joystick")
        if self.enable_joystick not in names:
            raise ConfigError(f"cab_joysticks.enable.joystick: no joystick {self.enable_joystick!r}")
        addresses: set[int] = set()
        for joystick in self.joysticks:
            where = f"cab_joysticks.joysticks.{joystick.name}"
            SOURCE_ADDRESS.check(joystick.source_address, f"{where}.source_address")
            if names.count(joystick.name) > 1 or joystick.source_address in addresses:
                raise ConfigError(f"{where}: name and source address must be unique")
            addresses.add(joystick.source_address)

    def frames(self, functions: Sequence[str], values: Sequence[float], enabled: bool) -> list[can.Message]:
        """BJM1 frames, one per cab joystick, carrying these machine-function commands."""
        command = dict(zip(functions, values, strict=True))
        frames = []
        for joystick in self.joysticks:
            x = joystick.x.sign * command[joystick.x.function] if joystick.x else 0.0
            y = joystick.y.sign * command[joystick.y.function] if joystick.y else 0.0
            buttons = [0] * BUTTONS
            if joystick.name == self.enable_joystick and enabled:
                buttons[self.enable_button - 1] = 1
            frames.append(encode_bjm1(x if enabled else 0.0, y if enabled else 0.0, buttons,
                                      joystick.source_address))
        return frames

    @property
    def functions_covered(self) -> set[str]:
        return {axis.function for j in self.joysticks for axis in (j.x, j.y) if axis is not None}


class CabJoystickReceiver:
    """Machine side: turns received BJM1 frames back into machine-function commands."""

    def __init__(self, layout: CabJoystickLayout, functions: Sequence[str]) -> None:
        self.layout = layout
        self.functions = tuple(functions)
        self._by_address = {j.source_address: j for j in layout.joysticks}
        self._latest: dict[int, tuple[int, tuple[float, ...], tuple[int, ...]]] = {}
        self.frames = 0
        self.invalid = 0

    def feed(self, msg: can.Message, t_ns: int) -> bool:
        if not msg.is_extended_id:
            return False
        frame = decode_joystick_frame(msg.arbitration_id, bytes(msg.data))
        if frame is None or frame.pgn != BJM1_PGN or frame.source_address not in self._by_address:
            return False
        self._latest[frame.source_address] = (t_ns, frame.axes, frame.buttons)
        self.frames += 1
        return True

    def command(self) -> tuple[tuple[float, ...], bool, int]:
        """(values, enabled, t_ns of the oldest joystick's last frame); neutral unless every joystick reported."""
        neutral = (tuple(0.0 for _ in self.functions), False, 0)
        if len(self._latest) < len(self._by_address):
            return neutral
        values = dict.fromkeys(self.functions, 0.0)
        enabled = False
        oldest = min(t for t, _, _ in self._latest.values())
        for address, joystick in self._by_address.items():
            _, axes, buttons = self._latest[address]
            for axis, value in ((joystick.x, axes[0]), (joystick.y, axes[1])):
                if axis is None:
                    continue
                if not math.isfinite(value):
                    self.invalid += 1
                    return neutral
                values[axis.function] = axis.sign * value
            if joystick.name == self.layout.enable_joystick:
                enabled = bool(buttons[self.layout.enable_button - 1])
        if not enabled:
            return neutral[0], False, oldest
        return tuple(values[f] for f in self.functions), True, oldest
