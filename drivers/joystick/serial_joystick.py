"""Industrial serial joystick over pyserial: a reader thread, staleness and unplug/replug handling."""

import contextlib
import logging
import time
from dataclasses import dataclass
from types import TracebackType

import serial

from excap.core.clock import now_ns
from excap.core.errors import DriverError
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.joystick.serial_protocols import PROTOCOLS, FrameParser, ProtocolName, make_parser
from excap.drivers.reader import DeviceReader, Outage

log = logging.getLogger(__name__)


@dataclass
class SerialJoystickConfig:
    port: str  # a device path (/dev/ttyUSB0) or any pyserial URL
    baudrate: int = 115200
    protocol: ProtocolName = "exjs1"
    device: str = "serial_joystick"
    read_timeout_s: float = 0.05
    stale_after_s: float = 0.1
    reconnect_interval_s: float = 0.5
    button_count: int | None = None  # ascii only: buttons per line (default: 4 per hex digit)


class SerialJoystick:
    """Reads one serial joystick in a background thread and hands every frame to `on_sample`.

    Health is OK while frames arrive, STALE when none came for `stale_after_s` (or none yet),
    DISCONNECTED after the port failed (it is then reopened every `reconnect_interval_s`), and
    STOPPED when closed. An unexpected error in the reader thread is the device's fault (`guard`):
    health FAILED, the port closed.
    """

    def __init__(self, config: SerialJoystickConfig, on_sample: SampleCallback) -> None:
        if config.protocol not in PROTOCOLS:
            raise DriverError(f"serial joystick {config.port}: unknown protocol {config.protocol!r}, "
                              f"expected one of {', '.join(PROTOCOLS)}")
        self.config = config
        self._on_sample = on_sample
        self._parser: FrameParser = make_parser(config.protocol, config.button_count)
        self._serial: serial.SerialBase | None = None
        self._reader: DeviceReader | None = None
        self._last_frame_mono: float | None = None
        self.counters = DriverCounters()
        self.last_error: str | None = None
        self.guard = ThreadGuard(f"joystick/{config.device}")

    @property
    def health(self) -> Health:
        if self._reader is None:
            return Health.STOPPED
        if self.guard.failed:
            return Health.FAILED
        if not self._reader.connected:
            return Health.DISCONNECTED
        last = self._last_frame_mono
        if last is None or time.monotonic() - last > self.config.stale_after_s:
            return Health.STALE
        return Health.OK

    @property
    def garbage_bytes(self) -> int:
        return self._parser.garbage_bytes

    @property
    def lost_frames(self) -> int:
        return self._parser.lost_frames

    def open(self) -> None:
        if self._reader is not None:
            return
        try:
            self._serial = self._open_port()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DriverError(f"cannot open serial joystick port {self.config.port}: "
                              f"{' '.join(str(exc).split())}") from exc
        self._reader = DeviceReader(
            f"serial-joystick-{self.config.device}", guard=self.guard, counters=self.counters,
            connect=self._reconnect, read=lambda: self._read_once(self._serial), release=self._close_port,
            lost=self._disconnected, back=self._reconnected, retry_s=lambda: self.config.reconnect_interval_s,
            loss_errors=(serial.SerialException, OSError), describe=_reason, retry_failed=self._retry_failed)
        self._reader.start()

    def close(self) -> None:
        if self._reader is not None and not self._reader.stop(timeout=5.0 + self.config.read_timeout_s):
            log.warning("serial joystick %s: reader thread did not stop", self.config.port)
        self._reader = None
        self._close_port()

    def __enter__(self) -> "SerialJoystick":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _open_port(self) -> serial.SerialBase:
        return serial.serial_for_url(self.config.port, self.config.baudrate, timeout=self.config.read_timeout_s)

    def _close_port(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(Exception):
                port.close()

    def _read_once(self, port: serial.SerialBase | None) -> None:
        assert port is not None
        data = port.read(port.in_waiting or 1)  # type: ignore[attr-defined]  # on every port class, not SerialBase
        if not data:
            return
        t_ns = now_ns()
        parser = self._parser
        bad_before = parser.bad_frames
        frames = parser.feed(data)
        if parser.bad_frames != bad_before:
            self.counters.bad_frames = parser.bad_frames
        for frame in frames:
            self._last_frame_mono = time.monotonic()
            sample = JoystickSample(device=self.config.device, t_ns=t_ns, t_device_ns=frame.t_device_us * 1000,
                                    axes=frame.axes, buttons=frame.buttons)
            self.counters.count_sample(t_ns)
            try:
                self._on_sample(sample)
            except Exception:
                self.counters.dropped += 1
                log.exception("serial joystick %s: sample callback failed", self.config.port)

    def _disconnected(self, reason: str) -> None:
        """A port error (the port is closed already): DISCONNECTED, reopened every `reconnect_interval_s`."""
        log.warning("serial joystick %s disconnected: %s", self.config.port, reason)
        self.last_error = reason

    def _retry_failed(self, reason: str) -> None:
        self.last_error = reason

    def _reconnect(self) -> bool:
        port = self._open_port()  # a port error is a failed retry: tried again after the interval
        self._parser.reset()
        self._last_frame_mono = None
        self._serial = port
        return True

    def _reconnected(self, _outage: Outage) -> None:
        log.info("serial joystick %s reconnected", self.config.port)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())
