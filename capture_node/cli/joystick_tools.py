"""The logic behind `excap joystick monitor` and `excap joystick calibrate`.

A joystick is described by a small dict (from the command line or a YAML file)::

    {type: j1939, name: left, source_address: 0x13, use_ejm: false, interface: socketcan, channel: can0}
    {type: serial, port: /dev/ttyUSB0, protocol: exjs1}
    {type: hid, device: /dev/input/by-id/usb-Logitech_Extreme_3D-event-joystick}
    {type: sim, name: sim_joystick, rate_hz: 50}

`joystick_factory(spec)` checks it and returns a `DriverFactory` (on_sample -> unopened driver), which
`monitor` and `run_calibration` open and close themselves.

Over 400 lines on purpose: monitor and calibration share the spec checks, the sample tracker and the
display; the drivers come from the joystick driver table (`excap.station.joystick_types`).
"""

import dataclasses
import math
import threading
import time
import types
import typing
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

import can

from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.core.periodic import Cadence, Late
from excap.drivers.base import DriverCounters, Health
from excap.drivers.joystick.base import JoystickSample, SampleCallback
from excap.drivers.joystick.calibration import Calibrator, DeviceCalibration
from excap.drivers.joystick.hid_joystick import HidJoystick
from excap.drivers.joystick.j1939_joystick import J1939Joystick, J1939JoystickConfig
from excap.station.joystick_types import JOYSTICK_TYPES


class JoystickDriver(Protocol):
    @property
    def counters(self) -> DriverCounters: ...

    @property
    def health(self) -> Health: ...

    def open(self) -> None: ...

    def close(self) -> None: ...


DriverFactory = Callable[[SampleCallback], JoystickDriver]
"""on_sample -> a driver that is not opened yet."""


# -- a J1939 joystick with a bus of its own ------------------------------------------------------


@dataclass
class CanBusSpec:
    interface: str
    channel: str
    bitrate: int | None = None


class J1939BusJoystick:
    """A J1939Joystick that opens its own python-can bus (and Notifier) on `open` and shuts it on `close`."""

    def __init__(self, config: J1939JoystickConfig, bus: CanBusSpec, on_sample: SampleCallback) -> None:
        self.joystick = J1939Joystick(config, on_sample)
        self.config = config
        self.bus_spec = bus
        self._bus: can.BusABC | None = None

    @property
    def counters(self) -> DriverCounters:
        return self.joystick.counters

    @property
    def axis_names(self) -> tuple[str, ...]:
        return self.joystick.axis_names

    @property
    def health(self) -> Health:
        return self.joystick.health if self._bus is not None else Health.STOPPED

    def open(self) -> None:
        if self._bus is not None:
            return
        options: dict[str, Any] = {"interface": self.bus_spec.interface, "channel": self.bus_spec.channel}
        if self.bus_spec.bitrate is not None:
            options["bitrate"] = self.bus_spec.bitrate
        try:
            bus = can.Bus(**options)
        except (can.CanError, OSError, ValueError, ImportError) as exc:
            raise DriverError(f"J1939 joystick {self.config.name}: cannot open CAN bus {self.bus_spec.interface} "
                              f"{self.bus_spec.channel}: {' '.join(str(exc).split())}") from exc
        self.joystick.open()
        self.joystick.attach(bus)
        self._bus = bus

    def close(self) -> None:
        self.joystick.close()
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.shutdown()

    def __enter__(self) -> "J1939BusJoystick":
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: types.TracebackType | None) -> None:
        self.close()


# -- specs -> drivers ----------------------------------------------------------------------------

BUS_KEYS = tuple(f.name for f in dataclasses.fields(CanBusSpec))


def _check_value(value: Any, hint: Any, where: str) -> Any:
    """`value` as the config field typed `hint` wants it (lists become tuples); ConfigError when it cannot be."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: unexpected value {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        if item is None and len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        kinds = [item] * len(value) if item is not None else list(args)
        return tuple(_check_value(v, kind, f"{where}[{i}]") for i, (v, kind) in enumerate(zip(value, kinds,
                                                                                                 strict=True)))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {str(k): _check_value(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {', '.join(map(str, args))}, got {value!r}")
        return value
    return value


def _build(cls: type, values: Mapping[str, Any], kind: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [key for key in values if key not in fields]
    if unknown:
        raise ConfigError(f"joystick spec ({kind}): unknown key {unknown[0]!r} "
                          f"(expected {', '.join(['type', *fields, *(BUS_KEYS if kind == 'j1939' else ())])})")
    missing = [name for name, f in fields.items() if name not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"joystick spec ({kind}): missing key {missing[0]!r}")
    return cls(**{key: _check_value(value, hints[key], f"joystick spec ({kind}): {key}")
                  for key, value in values.items()})


def _check_driver(driver_class: Callable[[Any, SampleCallback], object], config: object) -> None:
    """Build (without opening) a driver once, so that its own config checks run now."""
    try:
        driver_class(config, lambda sample: None)
    except DriverError as exc:
        raise ConfigError(f"joystick spec: {exc}") from exc


def joystick_factory(spec: Mapping[str, Any]) -> DriverFactory:
    """Check `spec` now; the factory builds an unopened driver for an on_sample callback."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"joystick spec: expected a mapping, got {spec!r}")
    kind = spec.get("type")
    if kind not in JOYSTICK_TYPES:
        raise ConfigError(f"joystick spec: unknown type {kind!r} (expected one of {', '.join(JOYSTICK_TYPES)})")
    values = {key: value for key, value in spec.items() if key != "type"}
    joystick = JOYSTICK_TYPES[kind]
    bus = _build(CanBusSpec, {key: values.pop(key) for key in BUS_KEYS if key in values}, kind) \
        if kind == "j1939" else None
    config = _build(joystick.config_class, values, kind)
    driver_class = joystick.driver_class
    _check_driver(driver_class, config)
    if bus is not None:  # the tools read a J1939 joystick from a bus of their own
        return lambda on_sample: J1939BusJoystick(config, bus, on_sample)
    return lambda on_sample: driver_class(config, on_sample)


def make_joystick(spec: Mapping[str, Any], on_sample: SampleCallback) -> JoystickDriver:
    """The driver `spec` describes, not opened yet."""
    return joystick_factory(spec)(on_sample)


def open_joystick(spec: Mapping[str, Any], on_sample: SampleCallback) -> JoystickDriver:
    """The driver `spec` describes, opened (close it when done)."""
    driver = make_joystick(spec, on_sample)
    driver.open()
    return driver


def driver_name(driver: object) -> str:
    config = getattr(driver, "config", None)
    for attribute in ("name", "device"):
        value = getattr(config, attribute, None)
        if value:
            return str(value)
    return str(getattr(driver, "device_name", "") or type(driver).__name__)


def driver_axis_names(driver: object) -> tuple[str, ...] | None:
    """The driver's own axis names (J1939: x, y, ...; HID: ABS codes), None when it has none (serial)."""
    names = getattr(driver, "axis_names", None)
    if names:
        return tuple(names)
    if isinstance(driver, HidJoystick):
        return tuple(driver.config.axes)
    return None


# -- monitor -------------------------------------------------------------------------------------

RATE_WINDOW_S = 1.0
BAR_WIDTH = 31


class SampleTracker:
    """A SampleCallback keeping the latest sample and the receive times of the last second, for rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._times: deque[int] = deque()
        self.latest: JoystickSample | None = None
        self.total = 0
        self.started_ns = now_ns()

    def __call__(self, sample: JoystickSample) -> None:
        with self._lock:
            self.latest = sample
            self.total += 1
            self._times.append(sample.t_ns)

    def rate_hz(self, t_ns: int | None = None) -> float:
        now = now_ns() if t_ns is None else t_ns
        window_ns = int(RATE_WINDOW_S * 1e9)
        with self._lock:
            while self._times and self._times[0] <= now - window_ns:
                self._times.popleft()
            count = len(self._times)
        span_s = min(RATE_WINDOW_S, (now - self.started_ns) / 1e9)
        return count / span_s if span_s > 0 else 0.0


def axis_bar(value: float, width: int = BAR_WIDTH) -> str:
    """`[----|###-----]`: filled from the centre towards the value; '?' across for NaN."""
    half = width // 2
    if math.isnan(value):
        return "[" + "?" * width + "]"
    filled = round(min(1.0, abs(value)) * half)
    cells = ["-"] * width
    cells[half] = "|"
    for step in range(1, filled + 1):
        cells[half + step if value > 0 else half - step] = "#"
    return "[" + "".join(cells) + "]"


def _names_for(sample: JoystickSample, names: Sequence[str] | None) -> list[str]:
    names = list(names or ())
    return [names[i] if i < len(names) else f"axis{i}" for i in range(len(sample.axes))]


def _counter_text(counters: DriverCounters | None, joiner: str, separator: str) -> str:
    if counters is None:
        return ""
    return separator.join(f"{key}{joiner}{getattr(counters, key)}"
                          for key in ("samples", "bad_frames", "dropped", "reconnects"))


def format_line(elapsed_s: float, name: str, health: Health, rate_hz: float, sample: JoystickSample | None,
                axis_names: Sequence[str] | None, counters: DriverCounters | None) -> str:
    """One line per refresh, for logs and pipes."""
    parts = [f"t={elapsed_s:.1f}s", name, str(health), f"rate={rate_hz:.1f}Hz"]
    if sample is None:
        parts.append("no samples")
    else:
        parts += [f"{n}={v:+.3f}" for n, v in zip(_names_for(sample, axis_names), sample.axes, strict=True)]
        parts.append("buttons=" + "".join(str(b) for b in sample.buttons))
    parts.append(_counter_text(counters, "=", " "))
    return " ".join(p for p in parts if p)


def format_screen(elapsed_s: float, name: str, health: Health, rate_hz: float, sample: JoystickSample | None,
                  axis_names: Sequence[str] | None, counters: DriverCounters | None) -> list[str]:
    """The full-screen view: a header, one bar per axis, the buttons and the counters."""
    lines = [f"{name}   health {health}   {rate_hz:6.1f} Hz   {elapsed_s:6.1f} s", ""]
    if sample is None:
        lines.append("  (no samples yet)")
    else:
        names = _names_for(sample, axis_names)
        width = max(len(n) for n in names) if names else 0
        for axis, value in zip(names, sample.axes, strict=True):
            lines.append(f"  {axis:<{width}} {value:+7.3f} {axis_bar(value)}")
        lines.append("")
        pressed = [str(i + 1) for i, b in enumerate(sample.buttons) if b]
        lines.append("  buttons " + " ".join("#" if b else "." for b in sample.buttons)
                     + f"   pressed: {', '.join(pressed) or '-'}")
    lines.append("")
    lines.append("  " + _counter_text(counters, " ", "   "))
    return lines


def monitor(driver_factory: DriverFactory, out: TextIO, duration_s: float | None = None, refresh_hz: float = 10.0,
            stop: threading.Event | None = None, axis_names: Sequence[str] | None = None) -> int:
    """Show a joystick live until `duration_s` passed, `stop` is set, or Ctrl-C; returns the samples seen.

    On a terminal the view is redrawn in place with ANSI escapes; otherwise one line is written per refresh.
    """
    if refresh_hz <= 0:
        raise ConfigError(f"monitor: refresh_hz must be positive (is {refresh_hz})")
    tracker = SampleTracker()
    driver = driver_factory(tracker)
    names = tuple(axis_names) if axis_names is not None else driver_axis_names(driver)
    name = driver_name(driver)
    stop = stop or threading.Event()
    tty = out.isatty()
    driver.open()
    start = time.monotonic()
    end = math.inf if duration_s is None else start + duration_s
    refresh = Cadence(1.0 / refresh_hz, Late.SKIP, start)  # a slow terminal skips refreshes, never bursts
    tracker.started_ns = now_ns()
    if tty:
        out.write("\x1b[?25l\x1b[2J")
    try:
        while True:
            refresh.take()
            elapsed = time.monotonic() - start
            view = (elapsed, name, driver.health, tracker.rate_hz(), tracker.latest, names,
                    getattr(driver, "counters", None))
            if tty:
                out.write("\x1b[H" + "\x1b[K\n".join(format_screen(*view)) + "\x1b[K\n\x1b[J")
            else:
                out.write(format_line(*view) + "\n")
            out.flush()
            if duration_s is not None and elapsed >= duration_s:
                break
            if stop.wait(max(0.0, min(refresh.due, end) - time.monotonic())):
                break
    except KeyboardInterrupt:
        pass
    finally:
        driver.close()
        if tty:
            out.write("\x1b[?25h")
            out.flush()
    return tracker.total


# -- calibration ---------------------------------------------------------------------------------


def run_calibration(driver_factory: DriverFactory, out: TextIO, prompt: Callable[[str], None],
                    centre_s: float = 2.0, sweep_s: float = 8.0, deadband: float = 0.05, expo: float = 0.0,
                    invert: Sequence[str] = (), axis_names: Sequence[str] | None = None) -> DeviceCalibration:
    """Guide the operator through centre and sweep; returns the calibration (not saved).

    `prompt(text)` shows an instruction and returns when the operator is ready (e.g. after Enter).
    ConfigError when an axis was not swept far enough; DriverError when the device sent nothing.
    """
    calibrator = Calibrator(axis_names)
    driver = driver_factory(calibrator.add)
    if axis_names is None and (names := driver_axis_names(driver)) is not None:
        calibrator.name_axes(names)
    name = driver_name(driver)
    driver.open()
    try:
        prompt(f"Calibrating {name}. Release every stick and leave it at rest.")
        out.write(f"Recording the rest position for {centre_s:.1f} s ...\n")
        out.flush()
        calibrator.start_centre()
        time.sleep(centre_s)
        calibrator.finish()  # nothing is collected while the operator reads the next instruction
        if calibrator.samples["centre"] == 0:
            raise DriverError(f"joystick {name}: no samples in {centre_s:.1f} s (health {driver.health})")
        prompt("Now move every axis slowly to both ends of its travel, several times.")
        out.write(f"Recording the sweep for {sweep_s:.1f} s ...\n")
        out.flush()
        calibrator.start_range()
        time.sleep(sweep_s)
        calibrator.finish()
        if calibrator.samples["range"] == 0:
            raise DriverError(f"joystick {name}: no samples in {sweep_s:.1f} s (health {driver.health})")
    finally:
        driver.close()
    result = calibrator.result(deadband=deadband, expo=expo, invert=invert)
    out.write(format_calibration(result))
    out.flush()
    return result


def format_calibration(calibration: DeviceCalibration) -> str:
    width = max((len(n) for n in calibration.axes), default=4)
    lines = [f"calibration of {calibration.device}:",
             f"  {'axis':<{width}} {'centre':>8} {'min':>8} {'max':>8} {'deadband':>9} {'expo':>6} invert"]
    for axis_name, axis in calibration.axes.items():
        lines.append(f"  {axis_name:<{width}} {axis.centre:+8.3f} {axis.min:+8.3f} {axis.max:+8.3f} "
                     f"{axis.deadband:9.3f} {axis.expo:6.3f} {'yes' if axis.invert else 'no'}")
    return "\n".join(lines) + "\n"
