"""USB HID gamepads and joysticks on Linux, read through the `inputs` package from evdev character devices.

The kernel exposes each device as /dev/input/eventN (stable names under /dev/input/by-id and by-path) and
writes one `struct input_event` per axis or button change, closing each update with SYN_REPORT. `inputs`
decodes the records; this driver keeps the current state and emits a `JoystickSample` per SYN_REPORT.
"""

import errno
import glob
import io
import logging
import os
import select
import struct
from dataclasses import dataclass, field
from types import TracebackType

import inputs

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import DriverCounters, Health, ThreadGuard
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.reader import DeviceReader, Outage, SourceLost

log = logging.getLogger(__name__)

SEARCH_DIRS = ("/dev/input/by-id", "/dev/input/by-path")
"""Where udev puts stable links to evdev nodes; joysticks end in '-event-joystick'.

('-joystick' links without '-event' point to the older /dev/input/jsN joydev interface, which `inputs` does not read.)
"""

DEFAULT_AXES = ("ABS_X", "ABS_Y", "ABS_RX", "ABS_RY", "ABS_Z", "ABS_RZ")
DEFAULT_BUTTONS = ("BTN_SOUTH", "BTN_EAST", "BTN_NORTH", "BTN_WEST", "BTN_TL", "BTN_TR", "BTN_SELECT", "BTN_START",
                   "BTN_MODE", "BTN_THUMBL", "BTN_THUMBR")
GAMEPAD_RANGE = (-32768, 32767)
DEFAULT_AXIS_RANGES: dict[str, tuple[int, int]] = {
    "ABS_Z": (0, 255),
    "ABS_RZ": (0, 255),
    "ABS_HAT0X": (-1, 1),
    "ABS_HAT0Y": (-1, 1),
}
"""Raw ranges of a typical XInput-style pad: sticks signed 16 bit, analogue triggers 0..255, d-pad -1..1."""

BUTTON_ALIASES = {"BTN_A": "BTN_SOUTH", "BTN_B": "BTN_EAST", "BTN_X": "BTN_NORTH", "BTN_Y": "BTN_WEST"}
"""Kernel aliases for codes that `inputs` reports under one name only."""


@dataclass
class HidJoystickConfig:
    """One HID device and the axes and buttons taken from it, in sample order.

    `device` is a path (evdev node, by-id/by-path link, or a FIFO carrying the same records) or, without a '/',
    a case-insensitive part of a discovered device's name or link name. `axis_ranges` overrides the raw
    min/max per axis code (see DEFAULT_AXIS_RANGES; everything else uses `default_range`).
    """

    device: str
    name: str = ""
    axes: tuple[str, ...] = DEFAULT_AXES
    buttons: tuple[str, ...] = DEFAULT_BUTTONS
    axis_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)
    default_range: tuple[int, int] = GAMEPAD_RANGE
    poll_interval_s: float = 0.1
    """How long the reader waits for input before checking that the device file is still there."""
    reconnect_interval_s: float = 0.5
    search_dirs: tuple[str, ...] = SEARCH_DIRS

    def axis_range(self, code: str) -> tuple[int, int]:
        if code in self.axis_ranges:
            return self.axis_ranges[code]
        return DEFAULT_AXIS_RANGES.get(code, self.default_range)


@dataclass(frozen=True)
class HidDeviceInfo:
    path: str
    """The path to open again after a re-plug: the by-id/by-path link when there is one."""
    char_path: str
    name: str


def scale_axis(raw: int, lo: int, hi: int) -> float:
    """Raw axis value to [-1, 1]: min -> -1, max -> 1, and 0 -> 0 exactly on ranges spanning zero."""
    if hi <= lo:
        return 0.0
    centre = 0.0 if lo < 0 < hi else (lo + hi) / 2
    value = (raw - centre) / (hi - centre) if raw >= centre else (raw - centre) / (centre - lo)
    return max(-1.0, min(1.0, value))


def device_name(path: str) -> str:
    """The kernel's name for an evdev node, else one made from its by-id link name, else the file name."""
    char_path = os.path.realpath(path)
    if os.path.dirname(char_path) == "/dev/input":
        try:
            with open(f"/sys/class/input/{os.path.basename(char_path)}/device/name", encoding="utf-8") as name_file:
                return name_file.read().strip()
        except OSError:
            pass
    stem = os.path.basename(path)
    _, _, rest = stem.partition("-")
    identifier = rest.removesuffix("-event-joystick").removesuffix("-joystick")
    return identifier.replace("_", " ") if identifier and identifier != rest else stem


def discover(search_dirs: tuple[str, ...] = SEARCH_DIRS) -> list[HidDeviceInfo]:
    """Joystick-class evdev devices under `search_dirs`, each listed once (by-id links before by-path ones)."""
    found: list[HidDeviceInfo] = []
    seen: set[str] = set()
    for folder in search_dirs:
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), "*-event-joystick"))):
            char_path = os.path.realpath(path)
            if char_path not in seen and os.path.exists(char_path):
                seen.add(char_path)
                found.append(HidDeviceInfo(path=path, char_path=char_path, name=device_name(path)))
    return found


def resolve(config: HidJoystickConfig) -> HidDeviceInfo:
    """The device `config.device` names; DriverError when a name matches nothing discovered."""
    if "/" in config.device:
        return HidDeviceInfo(path=config.device, char_path=os.path.realpath(config.device),
                             name=config.name or device_name(config.device))
    wanted = config.device.lower()
    for info in discover(config.search_dirs):
        if wanted in info.name.lower() or wanted in os.path.basename(info.path).lower():
            return info
    raise DriverError(f"HID joystick {config.device!r}: no matching '*-event-joystick' device under "
                      f"{', '.join(config.search_dirs)}")


def _code_names(table: tuple[tuple[int, str], ...], ev_type: str) -> dict[str, str]:
    """Every name `inputs` knows for an event type -> the one name it reports for that code."""
    reported = inputs.devices.codes[ev_type]
    return {name: reported[number] for number, name in table}


ABS_NAMES = _code_names(inputs.ABSOLUTE_AXES, "Absolute")
KEY_NAMES = _code_names(inputs.KEYS_AND_BUTTONS, "Key")


def _index(codes: tuple[str, ...], names: dict[str, str], kind: str, device: str) -> dict[str, int]:
    index: dict[str, int] = {}
    for position, code in enumerate(codes):
        reported = names.get(BUTTON_ALIASES.get(code, code))
        if reported is None:
            raise ConfigError(f"HID joystick {device!r}: unknown {kind} code {code!r}")
        if reported in index:
            raise ConfigError(f"HID joystick {device!r}: {kind} code {code!r} listed twice")
        index[reported] = position
    return index


class EvdevReader(inputs.InputDevice):  # type: ignore[misc]  # `inputs` has no type information
    """An `inputs` device on any file carrying evdev records: a /dev/input node, a by-id link, or a FIFO.

    Opens unbuffered and without blocking on a FIFO that has no writer yet, so `poll` sees exactly what is
    unread; `read_events` is one `inputs` read and decode (None at end of file, OSError once unplugged).
    """

    def __init__(self, path: str, name: str) -> None:
        self._given_name = name
        super().__init__(inputs.devices, device_path=path, char_path_override=os.path.realpath(path), read_size=1)

    def _get_path_infomation(self) -> tuple[str, str, str]:
        protocol, _, rest = os.path.basename(self._device_path).partition("-")
        identifier, _, kind = rest.rpartition("-")
        return protocol, identifier.removesuffix("-event"), kind

    def _set_name(self) -> None:
        self.name = self._given_name or device_name(self._device_path)

    def _make_event(self, tv_sec: int, tv_usec: int, ev_type: int, code: int, value: int) -> inputs.InputEvent:
        event = super()._make_event(tv_sec, tv_usec, ev_type, code, value)
        event.timestamp_ns = tv_sec * 1_000_000_000 + tv_usec * 1_000  # exact; `timestamp` is a float
        return event

    def open(self) -> None:
        fd = os.open(self._character_device_path, os.O_RDONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
        self._character_file: io.FileIO | None = open(fd, "rb", buffering=0)  # noqa: SIM115 - closed by close()

    def fileno(self) -> int:
        if self._character_file is None:
            raise OSError(errno.EBADF, "device closed", self._device_path)
        return self._character_file.fileno()

    def same_file(self) -> bool:
        """Whether the path still names the open file (False once removed or replaced by a new node)."""
        try:
            now, opened = os.stat(self._device_path), os.fstat(self.fileno())
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (opened.st_dev, opened.st_ino)

    def read_events(self) -> list[inputs.InputEvent] | None:
        events: list[inputs.InputEvent] | None = self._do_iter()
        return events

    def close(self) -> None:
        if self._character_file is not None:
            self._character_file.close()
            self._character_file = None


class HidJoystick:
    """One USB HID joystick: a reader thread turning evdev updates into `JoystickSample`s.

    Unplugging sets Health.DISCONNECTED and the thread re-opens the same path every `reconnect_interval_s`;
    state starts again from rest after a re-plug. Joysticks only report changes, so there is no STALE:
    `last_event_age_s` says how long the device has been quiet. An unexpected error in the reader thread
    is the device's fault (`guard`): health FAILED until closed.
    """

    def __init__(self, config: HidJoystickConfig, on_sample: SampleCallback) -> None:
        self.config = config
        self._on_sample = on_sample
        self._axis_index = _index(config.axes, ABS_NAMES, "axis", config.device)
        self._button_index = _index(config.buttons, KEY_NAMES, "button", config.device)
        self._ranges = [config.axis_range(code) for code in config.axes]
        self.counters = DriverCounters()
        self._health = Health.STOPPED
        self.info: HidDeviceInfo | None = None
        self.device_name = config.name or config.device
        self.guard = ThreadGuard(f"joystick/{self.device_name}")
        self._reader: EvdevReader | None = None
        self._poller: select.poll | None = None
        self._worker: DeviceReader | None = None
        self._last_event_ns: int | None = None
        self._discarding = False
        self._raw_axes: list[int] = []
        self._buttons: list[int] = []
        self._reset_state()

    @property
    def health(self) -> Health:
        if self.guard.failed and self._worker is not None:
            return Health.FAILED
        return self._health

    @property
    def last_event_age_s(self) -> float | None:
        """Seconds since the last event was read, None before the first."""
        last = self._last_event_ns
        return None if last is None else (now_ns() - last) / 1e9

    def open(self) -> None:
        if self._worker is not None:
            return
        self.info = resolve(self.config)
        self.device_name = self.config.name or self.info.name
        try:
            self._connect()
        except FileNotFoundError:
            raise DriverError(f"HID joystick {self.device_name!r} not found at {self.info.path}") from None
        except PermissionError:
            raise DriverError(f"HID joystick {self.device_name!r}: no permission to read {self.info.path} "
                              f"(is the user in the 'input' group?)") from None
        except OSError as exc:
            raise DriverError(f"HID joystick {self.device_name!r}: cannot open {self.info.path}: "
                              f"{exc.strerror or exc}") from None
        self._worker = DeviceReader(
            f"hid-joystick-{self.device_name}", guard=self.guard, counters=self.counters, connect=self._reconnect,
            read=self._pump, release=self._drop_reader, lost=self._disconnect, back=self._reconnected,
            retry_s=lambda: self.config.reconnect_interval_s, describe=_reason)
        self._worker.start()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._drop_reader()
        self._health = Health.STOPPED

    def __enter__(self) -> "HidJoystick":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _reset_state(self) -> None:
        self._raw_axes = [0 if lo <= 0 <= hi else lo for lo, hi in self._ranges]
        self._buttons = [0] * len(self.config.buttons)
        self._discarding = False

    def _connect(self) -> None:
        assert self.info is not None
        reader = EvdevReader(self.info.path, self.device_name)
        reader.open()
        poller = select.poll()
        poller.register(reader.fileno(), select.POLLIN | select.POLLPRI)
        self._reader, self._poller = reader, poller
        self._health = Health.OK

    def _drop_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = self._poller = None

    def _disconnect(self, reason: str) -> None:
        """Unplugged (an OSError, the device file removed, its end): the reader is dropped already."""
        log.warning("HID joystick %s disconnected: %s", self.device_name, reason)
        self._reset_state()
        self._health = Health.DISCONNECTED

    def _reconnect(self) -> bool:
        self._connect()  # an OSError is a failed retry: tried again after the interval
        return True

    def _reconnected(self, _outage: Outage) -> None:
        log.warning("HID joystick %s reconnected", self.device_name)

    def _pump(self) -> None:
        assert self._reader is not None and self._poller is not None
        if not self._poller.poll(self.config.poll_interval_s * 1000):
            if not self._reader.same_file():
                raise SourceLost("device file removed")
            return
        try:
            events = self._reader.read_events()
        except OSError as exc:  # ENODEV once the device is gone
            raise SourceLost(exc.strerror or str(exc)) from exc
        except (inputs.UnknownEventType, inputs.UnknownEventCode, struct.error):
            self.counters.bad_frames += 1
            return
        if events is None:
            raise SourceLost("end of file")
        t_ns = now_ns()
        for event in events:
            self._handle(event, t_ns)

    def _handle(self, event: inputs.InputEvent, t_ns: int) -> None:
        self._last_event_ns = t_ns
        if event.ev_type == "Sync":
            if event.code == "SYN_DROPPED":  # kernel buffer overrun: discard up to and including the next report
                self.counters.dropped += 1
                self._discarding = True
            elif event.code == "SYN_REPORT":
                if self._discarding:
                    self._discarding = False
                else:
                    self._emit(t_ns, event.timestamp_ns)
        elif self._discarding:
            return
        elif event.ev_type == "Absolute":
            position = self._axis_index.get(event.code)
            if position is not None:
                self._raw_axes[position] = event.state
        elif event.ev_type == "Key":
            position = self._button_index.get(event.code)
            if position is not None:
                self._buttons[position] = 1 if event.state else 0

    def _emit(self, t_ns: int, t_device_ns: int) -> None:
        axes = tuple(scale_axis(raw, lo, hi) for raw, (lo, hi) in zip(self._raw_axes, self._ranges, strict=True))
        sample = JoystickSample(device=self.device_name, t_ns=t_ns, t_device_ns=t_device_ns, axes=axes,
                                buttons=tuple(self._buttons))
        self.counters.count_sample(t_ns)
        try:
            self._on_sample(sample)
        except Exception:
            self.counters.dropped += 1
            log.exception("HID joystick %s: sample callback failed", self.device_name)


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
