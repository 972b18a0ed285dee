"""A running operator station: devices, monitor, joystick bindings, the page, and the terminal status line."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from excap.core.periodic import Poller
from excap.station.bindings import StationBindings
from excap.station.config import StationConfig
from excap.station.control import StationController
from excap.station.runtime import StationRuntime
from excap.station.status import StationMonitor, StatusThresholds, status_line
from excap.station.web.app import Station, StationServer, check_host
from excap.station.web.auth import RemoteAccess

BROWSER_GONE_S = 5.0  # no status request for this long: the terminal status line takes over


@dataclass
class RunningStation:
    """Every part of a running station, started in order and stopped in reverse."""

    runtime: StationRuntime
    station: Station
    server: StationServer | None = None
    parts: list[object] = field(default_factory=list)

    @classmethod
    def start(cls, config: StationConfig, thresholds: StatusThresholds | None = None, seed: int = 0,
              host: str | None = "127.0.0.1", port: int = 0, allow_remote: bool = False,
              remote: RemoteAccess | None = None) -> RunningStation:
        """Open the devices, then the monitor, the joystick bindings and (unless `host` is None) the page and API;
        `allow_remote` needs `remote` (TLS and logins)."""
        if host is not None:
            check_host(host, allow_remote, remote)
        runtime = StationRuntime(config, seed=seed).open()
        running = cls(runtime, Station(StationController(runtime), StationMonitor(runtime, thresholds)))
        try:
            running.station.monitor.start()
            running.parts.append(running.station.monitor)
            bindings = StationBindings(runtime, running.station.controller.act).start()
            running.station.bindings = bindings
            running.parts.append(bindings)
            if host is not None:
                running.server = StationServer(running.station, host, port, allow_remote, remote).start()
                running.parts.append(running.server)
        except BaseException:
            running.stop()
            raise
        return running

    def stop(self, reason: str = "shutdown") -> Path | None:
        """Stop the page, bindings and monitor, then the devices; returns a running episode's path (finished)."""
        while self.parts:
            self.parts.pop().stop()  # type: ignore[attr-defined]
        return self.runtime.close(reason=reason)


class StatusLine:
    """The terminal status line: refreshed in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, station: Station, stream: TextIO, always: bool, interval_s: float = 0.5) -> None:
        self.station = station
        self.stream = stream
        self.always = always
        self.interval_s = interval_s
        self.tty = stream.isatty()
        self._worker = Poller("station-status-line", interval_s, self._refresh)
        self._shown = False
        self._last_plain = 0.0

    def start(self) -> StatusLine:
        self._worker.start()
        return self

    def stop(self) -> None:
        self._worker.stop()
        if self._shown and self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _refresh(self) -> None:
        browser = time.monotonic() - self.station.last_poll < BROWSER_GONE_S
        if browser and not self.always:
            if self._shown and self.tty:
                self.stream.write("\r\033[K(page open in a browser)")
                self.stream.flush()
            return
        line = status_line(self.station.status())
        if self.tty:
            width = shutil.get_terminal_size((160, 24)).columns
            self.stream.write("\r\033[K" + line[: width - 1])
        elif time.monotonic() - self._last_plain >= 5.0:
            self.stream.write(line + "\n")
            self._last_plain = time.monotonic()
        self.stream.flush()
        self._shown = True
