"""A recording session at an operator station, built from a station config file.

Joystick drivers -> (calibration) -> /joystick/<device> and the station inputs -> command link
(-> cab-joystick frames on the command bus) -> /control; every CAN bus -> /can/<name> (+ decoded);
every camera -> JPEG encoder -> /cameras/<name>. With `machine.simulated`, the simulated machine
joins the virtual bus and answers the commands, for dry runs of a whole station.

One session is one episode over a `StationRuntime`: open the devices, start the episode, wait,
stop the devices (the last commands recorded are the neutral ones sent at shutdown), finish it.
The operator's certification is checked first (`excap.station.certification`): a refused
operator raises CertificationRefused before any device is opened. Then the session waits up to
`wait_devices_s` for the required devices to deliver data (`excap.station.readiness`); those still not
ready raise DevicesNotReady (nothing recorded) unless `start_anyway`, which records a `start_override`
event naming them. A stop requested before the episode starts (Ctrl-C while the devices open) raises
StoppedBeforeStart: nothing is recorded.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from excap.core.errors import ExcapError
from excap.core.periodic import wait_until
from excap.people.certification import CertificationCheck
from excap.record.recorder import Recorder
from excap.station.certification import CertificationRefused, check_station_operator, session_operator, start_certified
from excap.station.config import StationConfig
from excap.station.readiness import DevicesNotReady, NotReady, override_detail, wait_ready
from excap.station.runtime import StationRuntime


class StoppedBeforeStart(ExcapError):
    """The session was asked to stop before its episode started; nothing was recorded."""

    def __init__(self) -> None:
        super().__init__("stopped before the episode started: nothing recorded")


@dataclass
class OpenStation:
    """A station's devices, open and ready, with its operator's certification check (already allowed)."""

    runtime: StationRuntime
    check: CertificationCheck
    missing: list[NotReady] = field(default_factory=list)  # devices not ready, when opened with start_anyway


def open_checked_station(config: StationConfig, stop: threading.Event, overrides: dict[str, str] | None = None,
                         seed: int = 0, jpeg_quality: int = 90,
                         on_open: Callable[[StationRuntime], None] | None = None, wait_devices_s: float = 5.0,
                         start_anyway: bool = False) -> OpenStation:
    """Check the operator's certification, open the station's devices and wait for them.

    Raises CertificationRefused before any device is opened, DevicesNotReady (unless `start_anyway`) and
    StoppedBeforeStart after closing the devices again. `on_open` is called with the open runtime first.
    """
    check = check_station_operator(config, session_operator(config, overrides))
    if not check.allowed:
        raise CertificationRefused(check)
    runtime = StationRuntime(config, seed=seed, jpeg_quality=jpeg_quality).open()
    try:
        if on_open is not None:
            on_open(runtime)
        missing = wait_ready(runtime, wait_devices_s, stop)
        if stop.is_set():
            raise StoppedBeforeStart
        if missing and not start_anyway:
            raise DevicesNotReady(missing)
    except BaseException:
        runtime.close(reason="exception", outcome="aborted")
        raise
    return OpenStation(runtime, check, missing)


def run_station_session(config: StationConfig, stop: threading.Event | None = None,
                        duration_s: float | None = None, on_started: Callable[[Recorder], None] | None = None,
                        overrides: dict[str, str] | None = None, seed: int = 0, jpeg_quality: int = 90,
                        on_open: Callable[[StationRuntime], None] | None = None, wait_devices_s: float = 5.0,
                        start_anyway: bool = False, source: str = "record") -> Path:
    """Record one episode with the station's devices; returns the finished episode's path.

    `on_open` is called with the open runtime before the episode starts (live state, subscriptions).
    """
    stop = stop or threading.Event()
    station = open_checked_station(config, stop, overrides, seed, jpeg_quality, on_open, wait_devices_s,
                                   start_anyway)
    runtime = station.runtime
    try:
        recorder, _check = start_certified(runtime, overrides, station.check)
        if station.missing:
            runtime.switch.event("start_override",
                                 **override_detail(station.missing, source, recorder.metadata.operator_id))
        if on_started is not None:
            on_started(recorder)
        wait_until(lambda: recorder.fault, stop, duration_s)  # or the recorder failed
    except BaseException:
        runtime.close(reason="exception", outcome="aborted")
        raise
    runtime.close(reason="end")
    if recorder.journal_kept:  # a write failed: the station stopped the episode, the journal keeps the data
        raise recorder.failure()
    return recorder.paths.final
