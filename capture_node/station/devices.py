"""The station's device drivers built from its config entries, and the pieces that glue them together.

`watch_faults` is how a device's fault (a worker thread that died, see `excap.drivers.base.ThreadGuard`)
reaches the episode: a `fault` event naming the device and the error; for a joystick that feeds the
command path, the command link is told the input is lost first, so the commands go neutral at once.
"""

from collections.abc import Callable
from typing import Any

from excap.core.clock import now_ns
from excap.core.periodic import Poller
from excap.drivers.base import DeviceFault, Health, ThreadGuard
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.machine.command_link import CommandLink
from excap.station.config import JoystickEntry
from excap.station.joystick_types import JoystickContext, JoystickSetup, joystick_type

EventFunction = Callable[..., None]
"""(kind, t_ns=None, **detail) -> None, like `Recorder.event`."""


class DeferredFrames:
    """Frames go nowhere until the camera's real size is known and its encoder exists."""

    def __init__(self) -> None:
        self.target: Callable[[int, int, Any], None] | None = None
        self.early = 0

    def __call__(self, t_ns: int, t_device_ns: int, image: Any) -> None:
        if self.target is None:
            self.early += 1
            return
        self.target(t_ns, t_device_ns, image)


def open_joystick(entry: JoystickEntry, on_sample: SampleCallback, context: JoystickContext) -> Any:
    """The driver of one joystick entry (not opened yet), from the joystick driver table; samples arrive tagged
    with the entry's name."""

    def tagged(sample: JoystickSample) -> None:
        on_sample(JoystickSample(entry.name, sample.t_ns, sample.t_device_ns, sample.axes, sample.buttons))

    if entry.type == "sim" and context.machine is None:
        raise ValueError(f"joystick {entry.name}: type sim needs machine.simulated: true")
    setup = JoystickSetup(entry.name, entry.axes, entry.buttons, entry.options)
    return joystick_type(entry.type).build(setup, tagged, context)


def watch_faults(guard: ThreadGuard, event: EventFunction, link: CommandLink | None = None) -> None:
    """Record the device's fault as a `fault` event; with `link`, the input is lost (neutral) before that."""

    def on_fault(fault: DeviceFault) -> None:
        if link is not None:
            link.input_lost(f"{fault.device} failed: {fault.error}", fault.t_ns)
        event("fault", t_ns=fault.t_ns, **fault.detail())

    guard.listen(on_fault)


class HealthSupervisor:
    """Watches joystick health: a device that disconnects neutralises commands at once.

    Its own thread is guarded like a device's: if it fails, joystick losses would go unnoticed, so the
    commands are neutralised (the owner watches `guard` with the command link).
    """

    def __init__(self, event: EventFunction, link: CommandLink | None, joysticks: dict[str, Any], bound: set[str],
                 interval_s: float = 0.005) -> None:
        self.event = event
        self.link = link
        self.joysticks = joysticks
        self.bound = bound
        self.interval_s = interval_s
        self.guard = ThreadGuard("station/health_supervisor")
        self._worker = Poller("joystick-health", interval_s, self._check, guard=self.guard)
        self._last: dict[str, Health] = {}

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _check(self) -> None:
        for name, driver in self.joysticks.items():
            health = driver.health
            previous = self._last.get(name)
            self._last[name] = health
            if health == previous or previous is None:
                continue
            if health == Health.DISCONNECTED:
                lost_at = now_ns()
                if name in self.bound and self.link is not None:  # the commands first, the record after
                    self.link.input_lost(f"joystick {name} disconnected", lost_at)
                self.event("joystick_lost", t_ns=lost_at, device=name)
            elif previous == Health.DISCONNECTED:
                self.event("joystick_back", device=name)
