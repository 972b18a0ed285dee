"""Combines the station's joystick devices into the profile's inputs for the command path."""

import threading

from excap.drivers.joystick.base import JoystickSample
from excap.drivers.machine.command_link import OperatorInput
from excap.drivers.machine.profiles import MachineProfile
from excap.station.config import InputSource


class StationInputs:
    """Keeps each device's latest sample and composes the profile's axes and buttons from them.

    The composed input carries the oldest timestamp among periodically reporting devices, so a
    silent device makes the whole input stale; devices that report only changes (USB HID) do not
    age the input (their loss is reported by unplug detection instead).
    """

    def __init__(self, profile: MachineProfile, axes: dict[str, InputSource], buttons: dict[str, InputSource],
                 periodic_devices: set[str]) -> None:
        self.profile = profile
        self._axes = [axes.get(name) for name in profile.axes]
        self._buttons = [buttons.get(name) for name in profile.buttons]
        self._devices = {s.device for s in [*self._axes, *self._buttons] if s is not None}
        self._periodic = periodic_devices & self._devices
        self._latest: dict[str, JoystickSample] = {}
        self._lock = threading.Lock()

    @property
    def devices(self) -> set[str]:
        return set(self._devices)

    def update(self, sample: JoystickSample) -> OperatorInput | None:
        """Store a device's sample; the composed input once every bound device has reported."""
        if sample.device not in self._devices:
            return None
        with self._lock:
            self._latest[sample.device] = sample
            if len(self._latest) < len(self._devices):
                return None
            latest = dict(self._latest)
        axes = tuple(self._pick(latest, source, "axes", 0.0) for source in self._axes)
        buttons = tuple(int(self._pick(latest, source, "buttons", 0)) for source in self._buttons)
        periodic_times = [latest[d].t_ns for d in self._periodic]
        t_ns = min(periodic_times) if periodic_times else max(s.t_ns for s in latest.values())
        return OperatorInput(axes, buttons, t_ns, periodic=bool(periodic_times))

    @staticmethod
    def _pick(latest: dict[str, JoystickSample], source: InputSource | None, field: str,
              default: float) -> float:
        if source is None:
            return default
        values = getattr(latest[source.device], field)
        return values[source.index] if source.index < len(values) else float("nan")
