"""What every joystick driver produces, and the callback it hands samples to."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class JoystickSample:
    """The full state of one device after an update.

    `axes` are raw device values scaled to [-1, 1] (no calibration applied yet); `buttons` are 0/1.
    `t_ns` is host CLOCK_MONOTONIC (excap.core.clock.now_ns) when the update was read;
    `t_device_ns` is the device's or kernel's own timestamp in ns, 0 when there is none.
    """

    device: str
    t_ns: int
    t_device_ns: int
    axes: tuple[float, ...]
    buttons: tuple[int, ...]


SampleCallback = Callable[[JoystickSample], None]
