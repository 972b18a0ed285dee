"""The simulated machine as a device: physics and its J1939 traffic on a python-can bus.

Any kind of `excap.drivers.sim.machines` (excavator, wheel loader): the kind gives the model, the values its
J1939 messages carry and the cab wiring it reads its commands with.

It takes machine-function commands like a machine controller does and, like one, falls back to
neutral when commands stop arriving (`command_timeout_s`). An error in its thread (or while reading
a command frame) is the machine's fault (`guard`): it stops, health FAILED.
"""

import logging
from pathlib import Path
from typing import Any

import can

from excap.core.clock import now_ns
from excap.core.periodic import Late, Periodic
from excap.drivers.base import Health, ThreadGuard
from excap.drivers.machine.cab_joysticks import CabJoystickReceiver
from excap.drivers.sim import truth
from excap.drivers.sim.j1939_traffic import J1939TrafficGenerator
from excap.drivers.sim.machines import sim_machine

log = logging.getLogger(__name__)

DEFAULT_DBC = sim_machine("excavator").dbc


class _CommandListener(can.Listener):
    """Reads every frame on the machine's bus (an unread bus would queue frames without end)."""

    def __init__(self, receiver: CabJoystickReceiver | None, guard: ThreadGuard) -> None:
        self.receiver = receiver
        self.guard = guard

    def on_message_received(self, msg: can.Message) -> None:
        if self.receiver is None or self.guard.failed:
            return
        try:
            self.receiver.feed(msg, now_ns())
        except Exception as exc:
            self.guard.fail(exc)


class SimulatedMachine:
    """Commands come from the BJM1 frames of its cab joysticks on the bus, read with the machine's own fixed
    wiring (`excap.drivers.sim.cab_wiring`, never a profile's), as on the real machine; with
    `commands_from_bus=False`, from `set_command` (direct drive, for tests). `dbc_path`: the database whose
    messages it sends (default: its kind's own)."""

    def __init__(self, bus: can.BusABC, dbc_path: Path | None = None, seed: int = 0, tick_s: float = 0.005,
                 command_timeout_s: float = 0.2, commands_from_bus: bool = True, kind: str = "excavator") -> None:
        self.bus = bus
        self.kind = sim_machine(kind)
        self.functions = self.kind.functions
        self.model = self.kind.model(seed=seed)
        self.tick_s = tick_s
        self.command_timeout_s = command_timeout_s
        self._dbc_path = dbc_path or self.kind.dbc
        self._seed = seed
        self._command: tuple[tuple[float, ...], bool, int] = ((0.0,) * len(self.functions), False, 0)
        self._worker: Periodic | None = None
        self._last_step_ns = 0
        self._stopped = False
        self.guard = ThreadGuard("machine")
        self.frames_sent = 0
        self.send_errors = 0
        self.receiver = CabJoystickReceiver(self.kind.cab, self.functions) if commands_from_bus else None
        self._notifier: can.Notifier | None = None

    @property
    def state(self) -> Any:
        """The model's state (ExcavatorState, WheelLoaderState, ...)."""
        return self.model.state

    @property
    def health(self) -> Health:
        if self._worker is None or self._stopped:
            return Health.STOPPED
        return Health.FAILED if self.guard.failed else Health.OK

    def set_command(self, values: tuple[float, ...], enabled: bool, t_ns: int | None = None) -> None:
        self._command = (tuple(values), enabled, now_ns() if t_ns is None else t_ns)

    def start(self) -> None:
        self._traffic = J1939TrafficGenerator(self._dbc_path, now_ns(), self.kind.message_values, seed=self._seed)
        self._notifier = can.Notifier(self.bus, [_CommandListener(self.receiver, self.guard)], timeout=0.05)
        self._last_step_ns = now_ns()
        # Physics steps by the time that really passed: after a stall the next step is at once, then the grid
        # restarts from it (a burst of tiny steps would only burn time).
        self._worker = Periodic("sim-machine", self.tick_s, self._step, late=Late.REANCHOR, guard=self.guard)
        self._worker.start()

    def stop(self) -> None:
        self._stopped = True
        if self._worker is not None:
            self._worker.stop()
        if self._notifier is not None:
            self._notifier.stop()

    @property
    def nominal_can_rate_hz(self) -> float:
        return self._traffic.nominal_rate_hz

    def _step(self, _index: int) -> None:
        if self.guard.failed:  # a command frame could not be read: the machine stops
            assert self._worker is not None
            self._worker.request_stop()
            return
        t = now_ns()
        values, enabled, stamp = self.receiver.command() if self.receiver else self._command
        if (t - stamp) / 1e9 > self.command_timeout_s:
            values, enabled = (0.0,) * len(self.functions), False
        state = self.model.step((t - self._last_step_ns) / 1e9, values, enabled)
        self._last_step_ns = t
        stamps = truth.active()
        for frame in self._traffic.due(t, state):
            if stamps is not None:
                stamps.add(truth.CAN, "machine", now_ns(), (frame.arbitration_id, bytes(frame.data)))
            try:
                self.bus.send(frame)
                self.frames_sent += 1
            except can.CanError as exc:
                self.send_errors += 1
                log.debug("sim machine send failed: %s", exc)


SimulatedExcavator = SimulatedMachine
"""The simulated machine of the default kind (excavator); `SimulatedMachine(..., kind=...)` for the others."""
