"""The station's device drivers built from its config entries, and the pieces that glue them together.

`watch_faults` is how a device's fault (a worker thread that died, see `excap.drivers.base.ThreadGuard`)
reaches the episode: a `fault` event naming the device and the error; for a joystick that feeds the
command path, the command link is told the input is lost first, so the commands go neutral at once.
"""

from collections.abc import Callable
from typing import Any

from excap.core.clock import now_ns
from excap.core.periodic import Late, Periodic, Poller
from excap.drivers.base import DeviceFault, Health, ThreadGuard
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.limits import SIM_JOYSTICK_RATE_HZ
from excap.drivers.machine.command_link import CommandLink
from excap.drivers.machine.mapping import CommandMapper
from excap.drivers.sim.machine import SimulatedExcavator
from excap.drivers.sim.operator import ScriptedOperator
from excap.record.can_capture import CanCapture
from excap.station.config import JoystickEntry

EventFunction = Callable[..., None]
"""(kind, t_ns=None, **detail) -> None, like `Recorder.event`."""


class ScriptedJoystick:
    """The scripted operator as a periodic joystick device (type: sim), for dry runs.

    Its work phase (dig, swing, dump, ...) is reported as `operator_phase` events when it changes.
    """

    def __init__(self, name: str, operator: ScriptedOperator, machine: SimulatedExcavator, on_sample: SampleCallback,
                 event: EventFunction | None = None, rate_hz: float = 100.0) -> None:
        self.name = name
        self.operator = operator
        self.machine = machine
        self.on_sample = on_sample
        self.event = event
        self.period = 1.0 / SIM_JOYSTICK_RATE_HZ.check(rate_hz, f"joystick {name}: rate_hz")
        self.phase = ""
        self._health = Health.STOPPED
        self.guard = ThreadGuard(f"joystick/{name}")
        # A periodic device that fell behind reports its current sticks, never a burst of stale ones.
        self._worker = Periodic(f"sim-joystick-{name}", self.period, self._sample, late=Late.SKIP, guard=self.guard)

    @property
    def health(self) -> Health:
        if self.guard.failed and self._health is not Health.STOPPED:
            return Health.FAILED
        return self._health

    def open(self) -> None:
        self._health = Health.OK
        self._worker.start()

    def close(self) -> None:
        self._worker.stop()
        self._health = Health.STOPPED

    def _sample(self, _index: int) -> None:
        sticks = self.operator.sample(self.machine.state)
        t_ns = now_ns()
        self.on_sample(JoystickSample(self.name, t_ns, t_ns, sticks.axes, sticks.buttons))
        if sticks.phase != self.phase:
            self.phase = sticks.phase
            if self.event is not None:
                self.event("operator_phase", t_ns=t_ns, device=self.name, phase=self.phase)


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


def open_joystick(entry: JoystickEntry, on_sample: SampleCallback, captures: dict[str, CanCapture],
                  machine: SimulatedExcavator | None, mapper: CommandMapper, seed: int,
                  event: EventFunction | None = None) -> Any:
    """The driver of one joystick entry (not opened yet); samples arrive tagged with the entry's name."""

    def tagged(sample: JoystickSample) -> None:
        on_sample(JoystickSample(entry.name, sample.t_ns, sample.t_device_ns, sample.axes, sample.buttons))

    if entry.type == "hid":
        from excap.drivers.joystick.hid_joystick import HidJoystick, HidJoystickConfig

        return HidJoystick(HidJoystickConfig(**{"name": entry.name, **entry.options, "axes": entry.axes,
                                                "buttons": entry.buttons}), tagged)
    if entry.type == "serial":
        from excap.drivers.joystick.serial_joystick import SerialJoystick, SerialJoystickConfig

        return SerialJoystick(SerialJoystickConfig(**{"device": entry.name, **entry.options}), tagged)
    if entry.type == "j1939":
        from excap.drivers.joystick.j1939_joystick import J1939Joystick, J1939JoystickConfig

        driver = J1939Joystick(J1939JoystickConfig(name=entry.name, **entry.options), tagged)
        assert entry.bus is not None
        captures[entry.bus].add_listener(driver.listener())
        return driver
    if machine is None:
        raise ValueError(f"joystick {entry.name}: type sim needs machine.simulated: true")
    return ScriptedJoystick(entry.name, ScriptedOperator(mapper, seed=seed), machine, tagged, event)


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
                self.event("joystick_lost", device=name)
                if name in self.bound and self.link is not None:
                    self.link.input_lost(f"joystick {name} disconnected")
            elif previous == Health.DISCONNECTED:
                self.event("joystick_back", device=name)
