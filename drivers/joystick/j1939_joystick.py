"""SAE J1939 joysticks on CAN: BJM1 (x, y, 12 buttons) and optionally EJM1 (grip x, grip y, theta).

The driver is a python-can Listener, so several consumers can share one `can.Notifier` on one bus
(`listener()`), or it runs its own Notifier (`attach(bus)`). Every BJM1 frame from the configured
source address becomes one `JoystickSample`; EJM1 frames only update the grip axes carried by the next
sample. Axes reported with an error or not-available status arrive as NaN and are passed on as NaN.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from types import TracebackType

import can

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.can.j1939 import J1939Id
from excap.drivers.can.joystick_messages import BJM1_PGN, BUTTONS, EJM1_PGN, decode_joystick_frame
from excap.drivers.joystick.base import JoystickSample, SampleCallback

log = logging.getLogger(__name__)

BJM_AXIS_NAMES = ("x", "y")
EJM_AXIS_NAMES = ("grip_x", "grip_y", "theta")
NOTIFIER_TIMEOUT_S = 0.05


@dataclass
class J1939JoystickConfig:
    name: str
    source_address: int
    use_ejm: bool = False  # also read EJM1 (grip x, grip y, theta) from the same source address
    stale_after_s: float = 0.1  # these joysticks report periodically; silence this long is STALE


class _JoystickListener(can.Listener):
    """Runs in the thread that reads the bus: an unexpected error is the joystick's fault, not the reader's."""

    def __init__(self, joystick: "J1939Joystick") -> None:
        self._joystick = joystick

    def on_message_received(self, msg: can.Message) -> None:
        try:
            self._joystick.handle(msg)
        except Exception as exc:
            self._joystick.guard.fail(exc)


class J1939Joystick:
    """One J1939 joystick, identified by its source address, fed frames by a python-can Notifier.

    Health is OK while BJM1 frames arrive, STALE when none came for `stale_after_s` (or none yet),
    DISCONNECTED when its own Notifier (see `attach`) stopped on a bus error, FAILED once handling a frame
    failed unexpectedly (the fault is in `guard`; later frames are ignored), and STOPPED once closed.
    With `use_ejm`, the grip axes are NaN until an EJM1 frame arrives and whenever EJM1 went quiet for
    `stale_after_s`. `bad_frames` counts frames from this joystick with a NaN axis or a malformed payload.
    """

    def __init__(self, config: J1939JoystickConfig, on_sample: SampleCallback) -> None:
        if not 0 <= config.source_address <= 0xFD:
            raise ConfigError(f"J1939 joystick {config.name}: source address {config.source_address} "
                              f"is not in 0..253")
        self.config = config
        self._on_sample = on_sample
        self._listener = _JoystickListener(self)
        self._notifier: can.Notifier | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._last_bjm_mono: float | None = None
        self._last_ejm_mono: float | None = None
        self._ejm_axes: tuple[float, ...] = (math.nan,) * len(EJM_AXIS_NAMES)
        self.counters = DriverCounters()
        self.last_sample: JoystickSample | None = None
        self.guard = ThreadGuard(f"joystick/{config.name}")

    @property
    def axis_names(self) -> tuple[str, ...]:
        return BJM_AXIS_NAMES + EJM_AXIS_NAMES if self.config.use_ejm else BJM_AXIS_NAMES

    @property
    def button_count(self) -> int:
        return BUTTONS

    @property
    def health(self) -> Health:
        if self._closed:
            return Health.STOPPED
        if self.guard.failed:
            return Health.FAILED
        notifier = self._notifier
        if notifier is not None and notifier.exception is not None:
            return Health.DISCONNECTED
        last = self._last_bjm_mono
        if last is None or time.monotonic() - last > self.config.stale_after_s:
            return Health.STALE
        return Health.OK

    def listener(self) -> can.Listener:
        """The Listener to add to a (possibly shared) `can.Notifier`."""
        return self._listener

    def attach(self, bus: can.BusABC) -> can.Notifier:
        """Start a Notifier of its own on `bus`; `close` stops it (the bus stays open)."""
        with self._lock:
            if self._notifier is not None:
                raise DriverError(f"J1939 joystick {self.config.name}: already attached to a bus")
            self._closed = False
            self._notifier = can.Notifier(bus, [self._listener], timeout=NOTIFIER_TIMEOUT_S)
            return self._notifier

    def open(self) -> None:
        """Nothing to open: frames arrive through `listener()` or `attach()`. Clears a previous `close`."""
        self._closed = False

    def close(self) -> None:
        with self._lock:
            notifier, self._notifier = self._notifier, None
            self._closed = True
        if notifier is not None:
            notifier.stop()

    def __enter__(self) -> "J1939Joystick":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def handle(self, msg: can.Message) -> None:
        """Take one received frame (called by the Listener in the Notifier's thread)."""
        if self._closed or self.guard.failed or not msg.is_extended_id or msg.is_error_frame or msg.is_remote_frame:
            return
        ident = J1939Id.parse(msg.arbitration_id)
        if ident.source_address != self.config.source_address:
            return
        if ident.pgn == EJM1_PGN and not self.config.use_ejm:
            return
        if ident.pgn not in (BJM1_PGN, EJM1_PGN):
            return
        t_ns = now_ns()
        try:
            frame = decode_joystick_frame(msg.arbitration_id, bytes(msg.data))
        except Exception as exc:  # cantools rejects a payload it cannot decode
            log.debug("J1939 joystick %s: undecodable frame: %s", self.config.name, exc)
            frame = None
        if frame is None:
            self.counters.bad_frames += 1
            return
        if any(math.isnan(value) for value in frame.axes):
            self.counters.bad_frames += 1
        if frame.pgn == EJM1_PGN:
            self._ejm_axes = frame.axes
            self._last_ejm_mono = time.monotonic()
            return
        self._last_bjm_mono = time.monotonic()
        axes = frame.axes
        if self.config.use_ejm:
            axes = axes + self._current_ejm_axes()
        t_device_ns = int(msg.timestamp * 1e9) if math.isfinite(msg.timestamp) else 0
        sample = JoystickSample(device=self.config.name, t_ns=t_ns, t_device_ns=t_device_ns,
                                axes=axes, buttons=frame.buttons)
        self.counters.count_sample(t_ns)
        self.last_sample = sample
        try:
            self._on_sample(sample)
        except Exception:
            self.counters.dropped += 1
            log.exception("J1939 joystick %s: sample callback failed", self.config.name)

    def _current_ejm_axes(self) -> tuple[float, ...]:
        last = self._last_ejm_mono
        if last is None or time.monotonic() - last > self.config.stale_after_s:
            return (math.nan,) * len(EJM_AXIS_NAMES)
        return self._ejm_axes
