"""One reconnecting device reader: open -> read loop -> on loss: tell, wait, reopen -> ... -> stop.

A camera, a CAN bus, a serial or a HID joystick is read by a `DeviceReader`. The device gives it how to
`connect` (reopen), `read` and `release` its source, and what to do when the source is `lost` (its health
word, its event, its log line) and `back` (the same, with the `Outage`). The reader owns the rest, once for
all of them: the thread (a `Worker` under the device's guard, so an unexpected error is the device's fault:
FAILED health and a `fault` event), the connection state, the retry interval, the retry count, the device's
`counters.reconnects` and the outage's length.

A read reports a loss by raising `SourceLost` (its message is the reason) or one of the device's
`loss_errors` (described by `describe`); a reopen that raises one of those, or returns False, is retried
after `retry_s`. A loss while the reader is stopping is not a loss: the source is released, nothing told.
"""

from collections.abc import Callable
from dataclasses import dataclass

from excap.core.clock import now_ns
from excap.core.periodic import Worker
from excap.core.thread_guard import ThreadGuard, one_line
from excap.drivers.base import DriverCounters


class SourceLost(Exception):
    """Raised by a device's read when its source is gone; the message says why."""


@dataclass(frozen=True)
class Outage:
    attempts: int
    """Reopens tried since the loss, the successful one included."""
    down_s: float
    """Seconds from the loss to the reopen."""


def _nothing(_reason: str) -> None:
    pass


class DeviceReader(Worker):
    """Reads one device until stopped, reconnecting after every loss (see the module's description).

    `connected` says whether the source is open when the reader starts; if not, it starts retrying (call
    `lose` first to tell why). `retry_s` may be a function (a configuration that can change).
    """

    def __init__(self, name: str, *, guard: ThreadGuard, counters: DriverCounters, connect: Callable[[], bool],
                 read: Callable[[], None], release: Callable[[], None], lost: Callable[[str], None],
                 back: Callable[[Outage], None], retry_s: float | Callable[[], float],
                 loss_errors: tuple[type[BaseException], ...] = (OSError,),
                 describe: Callable[[BaseException], str] = one_line,
                 retry_failed: Callable[[str], None] = _nothing, connected: bool = True) -> None:
        super().__init__(name, guard=guard)
        self.counters = counters
        self._connect = connect
        self._read = read
        self._release = release
        self._lost = lost
        self._back = back
        self._retry_s = retry_s if callable(retry_s) else (lambda: retry_s)
        self._loss_errors = loss_errors
        self._describe = describe
        self._retry_failed = retry_failed
        self.connected = connected
        self.attempts = 0
        """Reopens tried since the source was last lost."""
        self._down_since_ns = 0 if connected else now_ns()

    def lose(self, reason: str) -> None:
        """The source is lost (`reason`): tell the device, then retry every `retry_s` (reader thread, or before
        `start`)."""
        self.connected = False
        self._down_since_ns = now_ns()
        self.attempts = 0
        self._lost(reason)

    def run(self) -> None:
        try:
            while not self.stopping:
                if not self.connected:
                    self._retry()
                    continue
                try:
                    self._read()
                except SourceLost as exc:
                    self._loss(str(exc))
                except self._loss_errors as exc:
                    self._loss(self._describe(exc))
        finally:
            self._release()

    def _loss(self, reason: str) -> None:
        self._release()
        if not self.stopping:
            self.lose(reason)

    def _retry(self) -> None:
        if self.wait(self._retry_s()):
            return
        self.attempts += 1
        losses: tuple[type[BaseException], ...] = (SourceLost, *self._loss_errors)
        try:
            opened = self._connect()
        except losses as exc:
            self._retry_failed(str(exc) if isinstance(exc, SourceLost) else self._describe(exc))
            return
        if not opened:
            return
        self.connected = True
        self.counters.reconnects += 1
        self._back(Outage(self.attempts, (now_ns() - self._down_since_ns) / 1e9))
