"""Joysticks for `excap joystick monitor` and `excap joystick calibrate`: a joystick spec to a driver.

A joystick is described by a small dict (from the command line or a YAML file)::

    {type: j1939, name: left, source_address: 0x13, use_ejm: false, interface: socketcan, channel: can0}
    {type: serial, port: /dev/ttyUSB0, protocol: exjs1}
    {type: hid, device: /dev/input/by-id/usb-Logitech_Extreme_3D-event-joystick}
    {type: sim, name: sim_joystick, rate_hz: 50}

`joystick_factory(spec)` checks it and returns a `DriverFactory` (on_sample -> unopened driver), which
`excap.cli.joystick_console.monitor` and `run_calibration` open and close themselves.
"""

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import can

from excap.core.errors import ConfigError, DriverError
from excap.drivers.base import DriverCounters, Health
from excap.drivers.joystick.base import SampleCallback
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
