"""Devices that fail while a station runs become `fault` events, and their recovery `fault_cleared` events.

`DeviceWatch` looks at every device of a `StationRuntime` every `interval_s`: its driver health (disconnected,
failed, stale), whether its stream went silent after it had delivered (a camera that stops delivering, a CAN bus
or a periodic joystick that goes quiet for `silent_after_s`) and, for a CAN bus, bus-off. Each change to a
problem is one `fault` event (detail: `device`, `problem`, `source` "watch"); the return to normal is one
`fault_cleared` event (`device`, `problem` it had, `after_s`). A fault the driver records itself (a worker thread
that died, see `excap.station.devices.watch_faults`; a CAN bus lost, see `excap.record.can_capture`) is not
recorded twice: the watch only adds its `fault_cleared`. An episode that starts while a device is in trouble gets
its `fault` event with `before_start: true`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import can

from excap.core.clock import now_ns
from excap.core.periodic import Poller
from excap.drivers.base import Health, ThreadGuard

if TYPE_CHECKING:
    from excap.station.runtime import StationRuntime

EventFunction = Callable[..., None]
SILENT_AFTER_S = 1.0
STREAM_PREFIX = {"camera": "cameras", "can": "can", "joystick": "joystick"}


@dataclass(frozen=True)
class Trouble:
    problem: str  # failed | disconnected | bus-off | stale | silent
    since_ns: int
    reported_by_driver: bool  # the driver recorded its own `fault` event for it


def device_problem(health: Health | None, silent_s: float | None, bus_off: bool,
                   silent_after_s: float) -> str:
    """What is wrong with one device now ("" when nothing is), worst first."""
    if health == Health.FAILED:
        return "failed"
    if health == Health.DISCONNECTED:
        return "disconnected"
    if bus_off:
        return "bus-off"
    if silent_s is not None and silent_s > silent_after_s:
        return "silent"
    if health == Health.STALE:
        return "stale"
    return ""


class DeviceWatch:
    """See the module. `event(kind, t_ns=None, **detail)` records into the running episode, if any."""

    def __init__(self, runtime: StationRuntime, event: EventFunction, interval_s: float = 0.1,
                 silent_after_s: float = SILENT_AFTER_S) -> None:
        self.runtime = runtime
        self.event = event
        self.silent_after_s = silent_after_s
        self.guard = ThreadGuard("station/device_watch")
        self.troubles: dict[str, Trouble] = {}
        self._lock = threading.Lock()
        self._worker = Poller("device-watch", interval_s, self.check, guard=self.guard)

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def check(self) -> None:
        """Compare every device's state with the last one seen; record the changes.

        The episode switch's lock is never taken while holding this watch's lock (an episode start holds the
        switch's lock and asks for the troubles): states are read before, events recorded after."""
        problems = self._problems()
        with self._lock:
            events = [event for device, problem in problems.items() if (event := self._update(device, problem))]
        for kind, t_ns, detail in events:
            self.event(kind, t_ns=t_ns, **detail)

    def on_episode_start(self, recorder: Any) -> None:
        """Devices in trouble when an episode starts: a `fault` event each, marked `before_start`."""
        with self._lock:
            troubles = dict(self.troubles)
        for device, trouble in troubles.items():
            if not trouble.reported_by_driver:
                recorder.event("fault", device=device, problem=trouble.problem, source="watch", before_start=True)

    def _problems(self) -> dict[str, str]:
        runtime = self.runtime
        t_ns = now_ns()
        silent: dict[str, float | None] = {}
        for tee in runtime.switch.streams():
            silent[tee.spec.path] = tee.staleness_s(t_ns) if tee.count else None
        hid = {j.name for j in runtime.config.joysticks if not j.periodic}
        problems = {}
        for device, health in runtime.health().items():
            kind, _, name = device.partition("/")
            stream = f"{STREAM_PREFIX[kind]}/{name}" if kind in STREAM_PREFIX and name not in hid else ""
            capture = runtime.captures.get(name) if kind == "can" else None
            bus_off = capture is not None and capture.bus_state == can.BusState.ERROR
            problems[device] = device_problem(health, silent.get(stream), bus_off, self.silent_after_s)
        return problems

    def _update(self, device: str, problem: str) -> tuple[str, int, dict[str, Any]] | None:
        """Note the device's state; the event to record for a change, if any."""
        previous = self.troubles.get(device)
        if problem == (previous.problem if previous else ""):
            return None
        t_ns = now_ns()
        if not problem:
            assert previous is not None
            del self.troubles[device]
            return "fault_cleared", t_ns, {"device": device, "problem": previous.problem,
                                           "after_s": round((t_ns - previous.since_ns) / 1e9, 3)}
        by_driver = problem == "failed" or (problem == "disconnected" and device.startswith("can/"))
        self.troubles[device] = Trouble(problem, t_ns, by_driver)
        if by_driver:
            return None
        return "fault", t_ns, {"device": device, "problem": problem, "source": "watch"}


__all__ = ["DeviceWatch", "Trouble", "device_problem"]
