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

from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import can

from excap.core.errors import ConfigError, DriverError
from excap.drivers.config_schema import Problem, validate_whole
from excap.drivers.device_schema import CanBusEntry, CanFilterEntry


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise ConfigError("\n".join(f"{p.key}: {p.message}" for p in problems))


@dataclass(frozen=True, kw_only=True)
class CanFilter:
    """Keep frames whose `id & can_mask == can_id & can_mask` (and, if given, whose extended flag matches)."""

    can_id: int
    can_mask: int
    extended: bool | None = None
    where: InitVar[str] = "filter"

    def __post_init__(self, where: str) -> None:
        _raise(validate_whole(CanFilterEntry, self.to_python_can(), where)[1])

    def to_python_can(self) -> dict[str, Any]:
        out: dict[str, Any] = {"can_id": self.can_id, "can_mask": self.can_mask}
        if self.extended is not None:
            out["extended"] = self.extended
        return out

    @classmethod
    def from_dict(cls, data: object, where: str) -> "CanFilter":
        entry, problems = validate_whole(CanFilterEntry, data, where)
        _raise(problems)
        return cls(can_id=entry.can_id, can_mask=entry.can_mask, extended=entry.extended, where=where)


@dataclass(kw_only=True)
class CanBusConfig:
    """One CAN bus. `name` is the episode channel (stream `can/<name>`), `channel` the interface's own channel.

    Built from a checked `CanBusEntry` (see `excap.drivers.device_schema`); built directly, it is checked against
    the same schema.
    """

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
        if not isinstance(self.filters, list) or not all(isinstance(f, CanFilter) for f in self.filters):
            raise ConfigError(f"{where}.filters: must be a list of CanFilter")
        if self.dbc is not None and not isinstance(self.dbc, Path):
            raise ConfigError(f"{where}.dbc: must be a path, not {self.dbc!r}")
        entry = {"name": self.name, "interface": self.interface, "channel": self.channel, "bitrate": self.bitrate,
                 "fd": self.fd, "data_bitrate": self.data_bitrate, "receive_own_messages": self.receive_own_messages,
                 "filters": [f.to_python_can() for f in self.filters], "extra": self.extra,
                 "reconnect_interval_s": self.reconnect_interval_s}
        _raise(validate_whole(CanBusEntry, entry, where)[1])

    @classmethod
    def from_dict(cls, data: object, where: str = "can", base_dir: Path | None = None) -> "CanBusConfig":
        """Build from one parsed YAML/JSON entry; `where` (e.g. 'cans[0]') prefixes every error line.

        A relative `dbc` path is taken relative to `base_dir` when given.
        """
        entry, problems = validate_whole(CanBusEntry, data, where)
        _raise(problems)
        return cls.from_entry(entry, where, base_dir)

    @classmethod
    def from_entry(cls, entry: CanBusEntry, where: str = "can", base_dir: Path | None = None) -> "CanBusConfig":
        dbc = Path(entry.dbc).expanduser() if entry.dbc is not None else None
        if dbc is not None and base_dir is not None and not dbc.is_absolute():
            dbc = base_dir / dbc
        return cls(name=entry.name, interface=entry.interface, channel=entry.channel, bitrate=entry.bitrate,
                   fd=entry.fd, data_bitrate=entry.data_bitrate, receive_own_messages=entry.receive_own_messages,
                   filters=[CanFilter(can_id=f.can_id, can_mask=f.can_mask, extended=f.extended,
                                      where=f"{where}.filters[{i}]") for i, f in enumerate(entry.filters)],
                   dbc=dbc, extra=dict(entry.extra), reconnect_interval_s=float(entry.reconnect_interval_s),
                   where=where)

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
