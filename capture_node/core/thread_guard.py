"""A worker thread's failure is a fault, never silence: one guard per device (or per owner of threads).

An exception that escapes a guarded thread body is latched as the guard's `DeviceFault` (device named,
error in one line), logged once and handed to every listener (the station records a `fault` event; a
joystick's fault neutralises the commands at once); the device then reports `Health.FAILED`.
`excap.core.periodic.Worker` runs every thread body under a guard.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from excap.core.clock import now_ns

log = logging.getLogger(__name__)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class DeviceFault:
    """A device's worker thread died: which device, which thread, what error, when (host monotonic ns)."""

    device: str
    error: str
    thread: str
    t_ns: int

    def detail(self) -> dict[str, Any]:
        """The `fault` event's detail."""
        return {"device": self.device, "error": self.error, "thread": self.thread}


FaultListener = Callable[[DeviceFault], None]


class ThreadGuard:
    """The worker threads of one device (`device`, e.g. 'camera/side'): an escaping exception is its fault.

    Only the first fault is kept and reported; `listen` after the fault hears it at once.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.fault: DeviceFault | None = None
        self._listeners: list[FaultListener] = []
        self._lock = threading.Lock()

    @property
    def failed(self) -> bool:
        return self.fault is not None

    def listen(self, listener: FaultListener) -> None:
        with self._lock:
            self._listeners.append(listener)
            fault = self.fault
        if fault is not None:
            self._tell(listener, fault)

    def thread(self, target: Callable[[], None], name: str) -> threading.Thread:
        """A daemon thread running `target` under this guard (not started)."""
        return threading.Thread(target=self.run, args=(target,), name=name, daemon=True)

    def run(self, target: Callable[[], None]) -> None:
        """Run a thread body; an exception escaping it becomes the device's fault."""
        try:
            target()
        except BaseException as exc:  # a dying thread is reported, whatever killed it
            self.fail(exc)

    def fail(self, exc: BaseException) -> None:
        """Latch `exc` as the device's fault (the first one only) and tell every listener."""
        fault = DeviceFault(self.device, one_line(exc), threading.current_thread().name, now_ns())
        with self._lock:
            if self.fault is not None:
                return
            self.fault = fault
            listeners = list(self._listeners)
        log.error("%s failed in thread %s: %s", self.device, fault.thread, fault.error, exc_info=exc)
        for listener in listeners:
            self._tell(listener, fault)

    def _tell(self, listener: FaultListener, fault: DeviceFault) -> None:
        try:
            listener(fault)
        except Exception:
            log.exception("%s: fault listener failed", self.device)
