"""A CAN bus from configuration: which python-can interface, channel and bit rate, and how to open it.

One entry of a configuration's `cans:` list, for example::

    cans:
      - name: can0              # episode stream can/can0
        interface: socketcan    # any python-can interface: socketcan, slcan, pcan, kvaser, vector, virtual, ...
        channel: can0
        bitrate: 250000
        filters: [{can_id: 0x18FEF100, can_mask: 0x1FFFFFFF, extended: true}]
        dbc: machines/excavator.dbc
        extra: {sleep_after_open: 0}   # passed to can.Bus as is

`udp_multicast` is a valid interface for real deployments, but it must never be used in tests:
its traffic leaves the machine. Tests use `virtual` buses and `slcan` over a pseudo-terminal.
"""

import re
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import can

from capture_node.errors import ConfigError, DriverError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_STANDARD_MASK = 0x7FF
_EXTENDED_MASK = 0x1FFFFFFF
#: Keyword arguments CanBusConfig sets itself; `extra` must not repeat them.
_OWN_KWARGS = ("interface", "channel", "bitrate", "fd", "data_bitrate", "receive_own_messages", "can_filters")
_KEYS = ("name", "interface", "channel", "bitrate", "fd", "data_bitrate", "receive_own_messages", "filters",
         "dbc", "extra", "reconnect_interval_s")
_FILTER_KEYS = ("can_id", "can_mask", "extended")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_int(value: object) -> object:
    """Integers may be written as numbers or as text such as '0x18FEF100'."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            return value
    return value


@dataclass(frozen=True, kw_only=True)
class CanFilter:
    """Keep frames whose `id & can_mask == can_id & can_mask` (and, if given, whose extended flag matches)."""

    can_id: int
    can_mask: int
    extended: bool | None = None
    where: InitVar[str] = "filter"

    def __post_init__(self, where: str) -> None:
        for key in ("can_id", "can_mask"):
            value = getattr(self, key)
            if not _is_int(value) or not 0 <= value <= _EXTENDED_MASK:
                raise ConfigError(f"{where}.{key}: must be an integer from 0 to 0x1FFFFFFF, not {value!r}")
        if self.extended is not None and not isinstance(self.extended, bool):
            raise ConfigError(f"{where}.extended: must be true or false, not {self.extended!r}")
        if self.extended is False and (self.can_id > _STANDARD_MASK or self.can_mask > _STANDARD_MASK):
            raise ConfigError(f"{where}.can_id: a standard (11-bit) filter takes ids and masks up to 0x7FF")

    def to_python_can(self) -> dict[str, Any]:
        out: dict[str, Any] = {"can_id": self.can_id, "can_mask": self.can_mask}
        if self.extended is not None:
            out["extended"] = self.extended
        return out

    @classmethod
    def from_dict(cls, data: object, where: str) -> "CanFilter":
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping with can_id and can_mask, not {data!r}")
        unknown = sorted(set(data) - set(_FILTER_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(_FILTER_KEYS)})")
        for key in ("can_id", "can_mask"):
            if key not in data:
                raise ConfigError(f"{where}.{key}: missing")
        return cls(can_id=_as_int(data["can_id"]), can_mask=_as_int(data["can_mask"]),  # type: ignore[arg-type]
                   extended=data.get("extended"), where=where)


@dataclass(kw_only=True)
class CanBusConfig:
    """One CAN bus. `name` is the episode channel (stream `can/<name>`), `channel` the interface's own channel."""

    name: str
    interface: str
    channel: str | int
    bitrate: int | None = None
    fd: bool = False
    data_bitrate: int | None = None
    receive_own_messages: bool = False
    filters: list[CanFilter] = field(default_factory=list)
    dbc: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reconnect_interval_s: float = 1.0
    where: InitVar[str] = "can"

    def __post_init__(self, where: str) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"{where}.name: must be a channel name like 'can0' (letters, digits, _ . -), "
                              f"not {self.name!r}")
        if not isinstance(self.interface, str) or self.interface not in can.interfaces.VALID_INTERFACES:
            known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
            raise ConfigError(f"{where}.interface: unknown python-can interface {self.interface!r} (known: {known})")
        if isinstance(self.channel, bool) or not isinstance(self.channel, str | int) or self.channel == "":
            raise ConfigError(f"{where}.channel: must be a non-empty string or an integer, not {self.channel!r}")
        for key in ("bitrate", "data_bitrate"):
            value = getattr(self, key)
            if value is not None and (not _is_int(value) or value <= 0):
                raise ConfigError(f"{where}.{key}: must be a positive integer, not {value!r}")
        for key in ("fd", "receive_own_messages"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{where}.{key}: must be true or false, not {getattr(self, key)!r}")
        if self.data_bitrate is not None and not self.fd:
            raise ConfigError(f"{where}.data_bitrate: only valid with fd: true")
        if not isinstance(self.filters, list) or not all(isinstance(f, CanFilter) for f in self.filters):
            raise ConfigError(f"{where}.filters: must be a list of CanFilter")
        if self.dbc is not None and not isinstance(self.dbc, Path):
            raise ConfigError(f"{where}.dbc: must be a path, not {self.dbc!r}")
        if not isinstance(self.extra, dict) or not all(isinstance(k, str) for k in self.extra):
            raise ConfigError(f"{where}.extra: must be a mapping of python-can keyword arguments")
        for key in self.extra:
            if key in _OWN_KWARGS:
                raise ConfigError(f"{where}.extra.{key}: set by excap itself; use {where}."
                                  f"{'filters' if key == 'can_filters' else key} instead")
        interval = self.reconnect_interval_s
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ConfigError(f"{where}.reconnect_interval_s: must be a positive number of seconds, not {interval!r}")

    @classmethod
    def from_dict(cls, data: object, where: str = "can", base_dir: Path | None = None) -> "CanBusConfig":
        """Build from one parsed YAML/JSON entry; `where` (e.g. 'cans[0]') prefixes every error.

        A relative `dbc` path is taken relative to `base_dir` when given.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a mapping with name, interface and channel, not {data!r}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(_KEYS)})")
        for key in ("name", "interface", "channel"):
            if key not in data:
                raise ConfigError(f"{where}.{key}: missing")
        filters = data.get("filters") or []
        if not isinstance(filters, list):
            raise ConfigError(f"{where}.filters: must be a list of {{can_id, can_mask, extended}}, not {filters!r}")
        dbc = data.get("dbc")
        if dbc is not None:
            if not isinstance(dbc, str | Path) or str(dbc) == "":
                raise ConfigError(f"{where}.dbc: must be a file path, not {dbc!r}")
            dbc = Path(dbc)
            if base_dir is not None and not dbc.is_absolute():
                dbc = base_dir / dbc
        extra = data.get("extra")
        return cls(
            name=data["name"],
            interface=data["interface"],
            channel=data["channel"],
            bitrate=_as_int(data.get("bitrate")),  # type: ignore[arg-type]
            fd=data.get("fd", False),
            data_bitrate=_as_int(data.get("data_bitrate")),  # type: ignore[arg-type]
            receive_own_messages=data.get("receive_own_messages", False),
            filters=[CanFilter.from_dict(f, f"{where}.filters[{i}]") for i, f in enumerate(filters)],
            dbc=dbc,
            extra={} if extra is None else extra,
            reconnect_interval_s=data.get("reconnect_interval_s", 1.0),
            where=where,
        )

    def bus_kwargs(self) -> dict[str, Any]:
        """The keyword arguments `can.Bus` gets for this configuration."""
        kwargs: dict[str, Any] = {**self.extra, "interface": self.interface, "channel": self.channel}
        if self.bitrate is not None:
            kwargs["bitrate"] = self.bitrate
        if self.fd:
            kwargs["fd"] = True
        if self.data_bitrate is not None:
            kwargs["data_bitrate"] = self.data_bitrate
        if self.receive_own_messages:
            kwargs["receive_own_messages"] = True
        if self.filters:
            kwargs["can_filters"] = [f.to_python_can() for f in self.filters]
        return kwargs


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_bus(config: CanBusConfig) -> can.BusABC:
    """Open the bus; any failure becomes one DriverError line naming the interface and channel."""
    try:
        return can.Bus(**config.bus_kwargs())
    except (can.CanError, ImportError, OSError, ValueError, TypeError) as exc:
        raise DriverError(f"CAN {config.name}: cannot open {config.interface} channel {config.channel!r} "
                          f"({_one_line(exc)})") from exc
