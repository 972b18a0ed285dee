"""The health rules of a running station: one place decides OK / WARN / ERROR for every part of it.

The station page (`excap.station.status`: stream states and the warning banner) and the ROS node's /diagnostics
(`excap.ros.diagnostics`) both show `assess(runtime, monitor, thresholds)`, so they never disagree. One finding per
subject, OK ones included:

- stream `<path>` (control, periodic joysticks, raw CAN, cameras): WARN no data yet, rows dropped lately, or a
  camera below `camera_min_rate` of its nominal rate; ERROR silent longer than `stale_after_s`.
- device `<name>` (driver health): WARN stale; ERROR disconnected or failed.
- command link: ERROR neutralised (until re-enabled from neutral) or faulted.
- can bus `<name>`: WARN error passive; ERROR bus-off.
- disk: WARN less than `disk_warn_bytes` free or less than `disk_warn_minutes` of recording left; ERROR less than
  `disk_error_bytes` free.
- clock: WARN the wall clock jumped against the monotonic clock lately.
- recorder: ERROR the recording failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING

import can

from excap.drivers.base import Health

if TYPE_CHECKING:
    from excap.station.runtime import StationRuntime, StreamState
    from excap.station.status import StationMonitor


class Level(IntEnum):
    """Ordered like ROS diagnostic_msgs/DiagnosticStatus levels (OK 0, WARN 1, ERROR 2)."""

    OK = 0
    WARN = 1
    ERROR = 2


@dataclass(kw_only=True)
class HealthThresholds:
    stale_after_s: float = 1.0  # a stream without data this long is stale
    disk_warn_bytes: float = 5e9  # less free space than this is a warning
    disk_error_bytes: float | None = None  # less free space than this is an error (default: a quarter of the above)
    disk_warn_minutes: float = 10.0  # less estimated recording time than this is a warning
    camera_min_rate: float = 0.5  # a camera delivering less than this fraction of its nominal rate is a warning
    camera_settle_s: float = 2.0  # ... once it has delivered frames for this long
    clock_jump_s: float = 0.1  # wall clock moved this much against the monotonic clock between two samples
    warn_hold_s: float = 30.0  # how long a clock jump or a drop stays a warning

    @property
    def disk_error(self) -> float:
        return self.disk_warn_bytes / 4 if self.disk_error_bytes is None else self.disk_error_bytes


@dataclass(frozen=True)
class Finding:
    subject: str  # "control", "cameras/side", "device joystick/operator", "command link", "can bus can0", "disk", ...
    level: Level
    text: str  # what is wrong, or the state when nothing is
    code: str = ""  # a stable name of the rule that fired ("" when OK)
    state: str = "ok"  # streams: ok | waiting | stale | dropping | slow
    values: dict[str, str] = field(default_factory=dict)


def watched_streams(runtime: StationRuntime) -> list[StreamState]:
    """Streams whose silence is a problem: control (when the station drives it), periodic joysticks, raw CAN,
    cameras (not decoded CAN, not events, not HID joysticks that only report changes)."""
    hid = {f"joystick/{j.name}" for j in runtime.config.joysticks if not j.periodic}
    return [s for s in runtime.stream_status()
            if "/decoded/" not in s.path and s.path != "events" and s.path not in hid
            and (s.path != "control" or runtime.drives_commands or s.samples)]


def stream_finding(stream: StreamState, thresholds: HealthThresholds, recent_drops: int | None = None,
                   nominal_hz: float | None = None, active_s: float | None = None) -> Finding:
    values = {"rate_hz": f"{stream.rate_hz:.2f}", "samples": str(stream.samples), "dropped": str(stream.dropped),
              "staleness_s": "" if stream.staleness_s is None else f"{stream.staleness_s:.3f}",
              "recording": str(stream.recording).lower()}
    path = stream.path
    if stream.samples == 0:
        return Finding(path, Level.WARN, f"{path}: no data yet", "stream_waiting", "waiting", values)
    if stream.staleness_s is not None and stream.staleness_s > thresholds.stale_after_s:
        return Finding(path, Level.ERROR, f"{path}: no data for {stream.staleness_s:.1f} s", "stream_stale", "stale",
                       values)
    if recent_drops:
        return Finding(path, Level.WARN, f"{path}: dropping ({recent_drops} rows lost lately)", "stream_dropping",
                       "dropping", values)
    if nominal_hz and (active_s or 0.0) >= thresholds.camera_settle_s \
            and stream.rate_hz < thresholds.camera_min_rate * nominal_hz:
        return Finding(path, Level.WARN, f"{path}: {stream.rate_hz:.1f} frames/s, below "
                       f"{thresholds.camera_min_rate:.0%} of its nominal {nominal_hz:g}", "camera_slow", "slow", values)
    return Finding(path, Level.OK, "ok", values=values)


def device_finding(name: str, health: Health) -> Finding:
    level = {Health.OK: Level.OK, Health.STOPPED: Level.OK, Health.STALE: Level.WARN}.get(health, Level.ERROR)
    return Finding(f"device {name}", level, f"{name}: {health.value}" if level else health.value,
                   "device" if level else "", values={"health": health.value})


def command_finding(link_state: str, fault: str, enabled: bool) -> Finding:
    values = {"state": link_state, "enabled": str(enabled).lower()}
    if link_state == "neutralised":
        return Finding("command link", Level.ERROR, f"COMMANDS NEUTRALISED: {fault or 'input fault'} (release enable, "
                       "centre the sticks, enable again)", "neutralised", values=values)
    if link_state == "faulted":
        return Finding("command link", Level.ERROR, f"COMMANDS STOPPED: {fault}", "command_link_failed",
                       values=values)
    return Finding("command link", Level.OK, link_state, values=values)


def bus_finding(name: str, state: can.BusState, error_frames: int) -> Finding:
    values = {"bus_state": state.name.lower(), "error_frames": str(error_frames)}
    if state == can.BusState.ERROR:
        return Finding(f"can bus {name}", Level.ERROR, f"can/{name}: bus-off", "can_bus_off", values=values)
    if state == can.BusState.PASSIVE:
        return Finding(f"can bus {name}", Level.WARN, f"can/{name}: error passive", "can_error_passive",
                       values=values)
    return Finding(f"can bus {name}", Level.OK, "error active", values=values)


def disk_finding(free_bytes: float | None, time_left_s: float | None, where: str,
                 thresholds: HealthThresholds) -> Finding:
    values = {"out_dir": where, "free_bytes": "" if free_bytes is None else str(int(free_bytes)),
              "time_left_s": "" if time_left_s is None else f"{time_left_s:.0f}"}
    if free_bytes is None:
        return Finding("disk", Level.OK, "not measured yet", values=values)
    free = f"{free_bytes / 1e9:.1f} GB free in {where}"
    if free_bytes < thresholds.disk_error:
        return Finding("disk", Level.ERROR, f"disk nearly full: {free}", "disk", values=values)
    if free_bytes < thresholds.disk_warn_bytes:
        return Finding("disk", Level.WARN, f"disk low: {free}", "disk", values=values)
    if time_left_s is not None and time_left_s < thresholds.disk_warn_minutes * 60:
        return Finding("disk", Level.WARN, f"disk: about {time_left_s / 60:.0f} min of recording left", "disk",
                       values=values)
    return Finding("disk", Level.OK, free, values=values)


def clock_finding(jump_s: float | None) -> Finding:
    if jump_s is None:
        return Finding("clock", Level.OK, "steady")
    return Finding("clock", Level.WARN, f"clock jump: the wall clock moved {jump_s:+.3f} s against the monotonic "
                   "clock", "clock_jump", values={"jump_s": f"{jump_s:.3f}"})


def recorder_finding(recording: bool, fault: str) -> Finding:
    if fault:
        return Finding("recorder", Level.ERROR, f"recorder fault: {fault}", "recorder_fault")
    return Finding("recorder", Level.OK, "recording" if recording else "idle")


def assess(runtime: StationRuntime, monitor: StationMonitor,
           thresholds: HealthThresholds | None = None) -> list[Finding]:
    """Every finding about the station now: streams, devices, command link, CAN buses, disk, clock, recorder."""
    thresholds = thresholds or monitor.thresholds
    nominal = {tee.spec.path: float(tee.spec.attrs.get("nominal_fps") or 0.0) for tee in runtime.switch.streams()
               if tee.spec.path.startswith("cameras/")}
    findings = [stream_finding(stream, thresholds, monitor.recent_drops.get(stream.path, (0, 0.0))[0],
                               nominal.get(stream.path), monitor.active_s(stream.path))
                for stream in watched_streams(runtime)]
    findings += [device_finding(name, Health(health)) for name, health in runtime.health().items()]
    command = runtime.command
    if runtime.link is not None:
        findings.append(command_finding(command.link_state, command.fault, command.enabled) if command is not None
                        else command_finding(runtime.link.state.value, runtime.link.fault, False))
    findings += [bus_finding(name, capture.bus_state, capture.error_frames)
                 for name, capture in runtime.captures.items()]
    findings.append(disk_finding(monitor.disk["free_bytes"], monitor.disk["time_left_s"], str(monitor.out_dir),
                                 thresholds))
    findings.append(clock_finding(monitor.clock_jump[0] if monitor.clock_jump is not None else None))
    recorder = runtime.recorder
    findings.append(recorder_finding(recorder is not None, recorder.fault if recorder is not None else ""))
    return findings


__all__ = ["Finding", "HealthThresholds", "Level", "assess", "watched_streams"]
