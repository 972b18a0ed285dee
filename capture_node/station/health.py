"""The health rules of a running station: one place decides OK / WARN / ERROR for every part of it.

The station page (`excap.station.status`: stream states and the warning banner) and the ROS node's /diagnostics
(`excap.ros.diagnostics`) both show `assess(runtime, monitor, thresholds)`, so they never disagree. One finding per
subject, OK ones included:

- stream `<path>` (control, periodic joysticks, raw CAN, cameras): WARN no data yet, rows dropped lately, or a
  camera below `camera_min_rate` of its nominal rate; ERROR silent longer than `stale_after_s`.
- device `<name>` (driver health): WARN stale (left to its stream's alert when that stream has a problem too);
  ERROR disconnected or failed.
- command link: ERROR neutralised (until re-enabled from neutral) or faulted.
- can bus `<name>`: WARN error passive; ERROR bus-off; silent (no frames for `stale_after_s` while error active):
  WARN, ERROR while recording (its raw stream `can/<name>` then says "silent" and leaves the alert to the bus).
- disk: WARN less than `disk_warn_bytes` free or less than `disk_warn_minutes` of recording left; ERROR less than
  `disk_error_bytes` free.
- clock: WARN the wall clock jumped against the monotonic clock lately.
- recorder: ERROR the recording failed.

Every problem says in plain words what is wrong, since when, what it means for the data and what to do, and whether
it is loud (`sound`: it affects safety or the recorded data). `alert_order` sorts them for the page's alert area.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
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
    """One subject's state. A problem (WARN or ERROR) says in plain words what is wrong (`title`), since when
    (`since_s`: seconds the condition has held, None when unknown), what it means for the data (`meaning`) and
    what to do (`action`); `sound` marks faults that affect safety or the recorded data (the page beeps)."""

    subject: str  # "control", "cameras/side", "device joystick/operator", "command link", "can bus can0", "disk", ...
    level: Level
    text: str  # the whole sentence (title, meaning, action), or the state when nothing is wrong
    code: str = ""  # a stable name of the rule that fired ("" when OK)
    state: str = "ok"  # streams: ok | waiting | stale | dropping | slow | silent; can buses: ok | silent | ...
    values: dict[str, str] = field(default_factory=dict)
    title: str = ""  # what is wrong, short: "Camera cab: no picture for 12 s"
    meaning: str = ""  # what it means for the data or the machine
    action: str = ""  # what to do
    since_s: float | None = None  # how long the condition has held
    sound: bool = False  # affects safety or the recorded data
    shown_by: str = ""  # the subject of another finding that already alerts about the same fault


def problem(subject: str, level: Level, code: str, title: str, meaning: str, action: str, *, state: str = "ok",
            values: dict[str, str] | None = None, since_s: float | None = None, sound: bool = False) -> Finding:
    """A WARN or ERROR finding; its `text` is the whole plain-words sentence."""
    text = " ".join(part.strip() for part in (f"{title}.", meaning, action) if part.strip(". "))
    return Finding(subject, level, text, code, state, values or {}, title, meaning, action, since_s, sound)


class Onsets:
    """When each subject's current problem began (monotonic seconds), so a finding can say "since when"."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._seen: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def held_s(self, subject: str, code: str) -> float:
        """Seconds `subject` has had the problem `code` (0 the first time it is seen); "" clears it."""
        now = self.clock()
        with self._lock:
            seen = self._seen.get(subject)
            if not code:
                self._seen.pop(subject, None)
                return 0.0
            if seen is None or seen[0] != code:
                self._seen[subject] = seen = (code, now)
            return now - seen[1]


def subject_name(path: str) -> str:
    """A stream or device path in plain words: cameras/cab -> Camera cab, can/can0 -> CAN bus can0."""
    kind, _, name = path.partition("/")
    names = {"cameras": "Camera", "camera": "Camera", "joystick": "Joystick", "can": "CAN bus"}
    if kind in names and name:
        return f"{names[kind]} {name}"
    return {"control": "Command stream", "machine": "Machine link", "command_link": "Command link",
            "events": "Events"}.get(path, path)


FIX = {
    "cameras": "Check the camera cable and power.",
    "camera": "Check the camera cable and power.",
    "joystick": "Check the joystick cable and that the joystick is switched on.",
    "can": "Check the CAN cable and that the machine's ignition is on.",
    "control": "Hold enable with the sticks centred; if it stays, restart the station.",
    "machine": "Check the CAN cable to the machine and that its ignition is on.",
    "command_link": "Stop the recording and restart the station.",
}
GENERIC_FIX = "Check its cable and power."


def _fix(path: str) -> str:
    return FIX.get(path.split("/")[0], GENERIC_FIX)


def _no_data(path: str) -> str:
    return "no picture" if path.startswith("cameras/") else "no data"


def watched_streams(runtime: StationRuntime) -> list[StreamState]:
    """Streams whose silence is a problem: control (when the station drives it), periodic joysticks, raw CAN,
    cameras (not decoded CAN, not events, not HID joysticks that only report changes)."""
    hid = {f"joystick/{j.name}" for j in runtime.config.joysticks if not j.periodic}
    return [s for s in runtime.stream_status()
            if "/decoded/" not in s.path and s.path != "events" and s.path not in hid
            and (s.path != "control" or runtime.drives_commands or s.samples)]


def _gap(recording: bool) -> str:
    return "This recording will have a gap." if recording else "A recording started now would have a gap."


def stream_finding(stream: StreamState, thresholds: HealthThresholds, recent_drops: int | None = None,
                   nominal_hz: float | None = None, active_s: float | None = None) -> Finding:
    values = {"rate_hz": f"{stream.rate_hz:.2f}", "samples": str(stream.samples), "dropped": str(stream.dropped),
              "staleness_s": "" if stream.staleness_s is None else f"{stream.staleness_s:.3f}",
              "recording": str(stream.recording).lower()}
    path, name = stream.path, subject_name(stream.path)
    safety = path == "control" or path.startswith("joystick/")
    neutral = " Commands to the machine are held at neutral." if safety else ""
    if stream.samples == 0:
        return problem(path, Level.WARN, "stream_waiting", f"{name}: {_no_data(path)} yet",
                       "Nothing has arrived from it since the station started; a recording now would miss it.",
                       _fix(path), state="waiting", values=values)
    if stream.staleness_s is not None and stream.staleness_s > thresholds.stale_after_s:
        return problem(path, Level.ERROR, "stream_stale", f"{name}: {_no_data(path)} for {int(stream.staleness_s)} s",
                       _gap(stream.recording) + neutral, _fix(path), state="stale", values=values,
                       since_s=stream.staleness_s, sound=stream.recording or safety)
    if recent_drops:
        return problem(path, Level.WARN, "stream_dropping", f"{name}: {recent_drops} samples lost lately",
                       "The recording has small gaps in this stream: the station computer cannot keep up.",
                       "Close other programs on the station; if it keeps happening, lower the camera rate or size.",
                       state="dropping", values=values)
    if nominal_hz and (active_s or 0.0) >= thresholds.camera_settle_s \
            and stream.rate_hz < thresholds.camera_min_rate * nominal_hz:
        return problem(path, Level.WARN, "camera_slow", f"{name}: {stream.rate_hz:.1f} frames/s, below "
                       f"{thresholds.camera_min_rate:.0%} of its nominal {nominal_hz:g}",
                       "Its video will be jerky, with fewer pictures than the other streams.",
                       "Give it more light (dark scenes slow the exposure) and check its cable and USB port.",
                       state="slow", values=values)
    return Finding(path, Level.OK, "ok", values=values)


def device_finding(name: str, health: Health, since_s: float | None = None) -> Finding:
    level = {Health.OK: Level.OK, Health.STOPPED: Level.OK, Health.STALE: Level.WARN}.get(health, Level.ERROR)
    values = {"health": health.value}
    subject, plain = f"device {name}", subject_name(name)
    if level == Level.OK:
        return Finding(subject, level, health.value, values=values)
    if health == Health.STALE:
        return problem(subject, level, "device", f"{plain}: answering late", "Its data may have gaps.", _fix(name),
                       values=values, since_s=since_s)
    if health == Health.FAILED:
        return problem(subject, level, "device", f"{plain}: failed",
                       "Its driver stopped with an error; nothing from it is recorded.",
                       "Stop the recording and restart the station; if it happens again, report it with the "
                       "station log.", values=values, since_s=since_s, sound=True)
    return problem(subject, level, "device", f"{plain}: {health.value}",
                   "Nothing from it is recorded; the station keeps trying to reconnect.", _fix(name), values=values,
                   since_s=since_s, sound=True)


def command_finding(link_state: str, fault: str, enabled: bool, since_s: float | None = None) -> Finding:
    values = {"state": link_state, "enabled": str(enabled).lower()}
    if link_state == "neutralised":
        return problem("command link", Level.ERROR, "neutralised",
                       f"Commands neutralised: {fault or 'input fault'}",
                       "The machine does not follow the sticks; every function is held at neutral.",
                       "Release enable, centre the sticks, then hold enable again.", values=values, since_s=since_s,
                       sound=True)
    if link_state == "faulted":
        return problem("command link", Level.ERROR, "command_link_failed", f"Commands stopped: {fault}",
                       "The machine receives no commands.",
                       "Stop the recording, check the CAN connection to the machine and restart the station.",
                       values=values, since_s=since_s, sound=True)
    return Finding("command link", Level.OK, link_state, values=values)


WIRING = "Check the CAN wiring, connectors and the 120 ohm terminators at both ends of the bus."


def bus_finding(name: str, state: can.BusState, error_frames: int, silent_s: float | None = None,
                recording: bool = False, since_s: float | None = None) -> Finding:
    """`silent_s`: how long the bus has carried no frames, once that is longer than the stale threshold
    (None: not silent). A silent bus is a WARN, and an ERROR while recording."""
    values = {"bus_state": state.name.lower(), "error_frames": str(error_frames),
              "silent_s": "" if silent_s is None else f"{silent_s:.1f}"}
    subject, plain = f"can bus {name}", f"CAN bus {name}"
    if state == can.BusState.ERROR:
        return problem(subject, Level.ERROR, "can_bus_off", f"{plain}: off the bus (bus-off)",
                       "No CAN frames are recorded and commands cannot reach the machine.",
                       WIRING + " The station reconnects by itself.", state="bus-off", values=values,
                       since_s=since_s, sound=True)
    if state == can.BusState.PASSIVE:
        return problem(subject, Level.WARN, "can_error_passive", f"{plain}: many transmission errors (error passive)",
                       "Frames may be lost or late, and the bus may go off.", WIRING, state="error-passive",
                       values=values, since_s=since_s)
    if silent_s is not None:
        meaning = ("This recording has no machine data for that time." if recording
                   else "A recording started now would have no machine data.")
        return problem(subject, Level.ERROR if recording else Level.WARN, "can_silent",
                       f"{plain}: silent, no frames for {int(silent_s)} s", meaning, FIX["can"], state="silent",
                       values=values, since_s=silent_s, sound=recording)
    return Finding(subject, Level.OK, "error active", values=values)


def disk_finding(free_bytes: float | None, time_left_s: float | None, where: str,
                 thresholds: HealthThresholds, since_s: float | None = None) -> Finding:
    values = {"out_dir": where, "free_bytes": "" if free_bytes is None else str(int(free_bytes)),
              "time_left_s": "" if time_left_s is None else f"{time_left_s:.0f}"}
    if free_bytes is None:
        return Finding("disk", Level.OK, "not measured yet", values=values)
    free = f"{free_bytes / 1e9:.1f} GB free in {where}"
    clear = "Copy finished episodes off the station and delete them, or record to a larger disk."
    left = "" if time_left_s is None else f" About {time_left_s / 60:.0f} min of recording left."
    if free_bytes < thresholds.disk_error:
        return problem("disk", Level.ERROR, "disk", f"Disk nearly full: {free}",
                       "A recording stops when the disk is full." + left, clear, values=values, since_s=since_s,
                       sound=True)
    if free_bytes < thresholds.disk_warn_bytes:
        return problem("disk", Level.WARN, "disk", f"Disk low: {free}", "Space for recordings is running out." + left,
                       clear, values=values, since_s=since_s)
    if time_left_s is not None and time_left_s < thresholds.disk_warn_minutes * 60:
        return problem("disk", Level.WARN, "disk", f"Disk: about {time_left_s / 60:.0f} min of recording left",
                       f"At the current rate the disk is full soon ({free}).", clear, values=values, since_s=since_s)
    return Finding("disk", Level.OK, free, values=values)


def clock_finding(jump_s: float | None, since_s: float | None = None) -> Finding:
    if jump_s is None:
        return Finding("clock", Level.OK, "steady")
    return problem("clock", Level.WARN, "clock_jump", f"Clock jump: the wall clock moved {jump_s:+.3f} s",
                   "The recording's timing is unaffected, but its UTC times may be off by that much.",
                   "Check the station computer's time synchronisation (NTP / chrony).",
                   values={"jump_s": f"{jump_s:.3f}"}, since_s=since_s)


def recorder_finding(recording: bool, fault: str, since_s: float | None = None) -> Finding:
    if fault:
        return problem("recorder", Level.ERROR, "recorder_fault", f"Recording failed: {fault}",
                       "The episode is not being written; what was saved so far is recovered on the next start.",
                       "Stop, check the disk, then start a new recording.", since_s=since_s, sound=True)
    return Finding("recorder", Level.OK, "recording" if recording else "idle")


def _can_silence(runtime: StationRuntime, monitor: StationMonitor, thresholds: HealthThresholds,
                 streams: dict[str, StreamState]) -> dict[str, float]:
    """Seconds each CAN bus has been silent, for buses silent longer than `stale_after_s`."""
    silent: dict[str, float] = {}
    for name in runtime.captures:
        stream = streams.get(f"can/{name}")
        if stream is None:
            continue
        quiet = stream.staleness_s if stream.samples else monitor.uptime_s()
        if quiet is not None and quiet > thresholds.stale_after_s:
            silent[name] = quiet
    return silent


def _with_onset(finding: Finding, onsets: Onsets) -> Finding:
    held = onsets.held_s(finding.subject, finding.code if finding.level > Level.OK else "")
    if finding.level == Level.OK or finding.since_s is not None:
        return finding
    return replace(finding, since_s=held)


def assess(runtime: StationRuntime, monitor: StationMonitor,
           thresholds: HealthThresholds | None = None) -> list[Finding]:
    """Every finding about the station now: streams, devices, command link, CAN buses, disk, clock, recorder."""
    thresholds = thresholds or monitor.thresholds
    nominal = {tee.spec.path: float(tee.spec.attrs.get("nominal_fps") or 0.0) for tee in runtime.switch.streams()
               if tee.spec.path.startswith("cameras/")}
    watched = watched_streams(runtime)
    streams = {stream.path: stream for stream in watched}
    silent = _can_silence(runtime, monitor, thresholds, streams)
    recording = runtime.recording
    buses = {name: bus_finding(name, capture.bus_state, capture.error_frames, silent.get(name), recording)
             for name, capture in runtime.captures.items()}
    findings = []
    for stream in watched:
        finding = stream_finding(stream, thresholds, monitor.recent_drops.get(stream.path, (0, 0.0))[0],
                                 nominal.get(stream.path), monitor.active_s(stream.path))
        bus = buses.get(stream.path.removeprefix("can/")) if stream.path.startswith("can/") else None
        if bus is not None and bus.code == "can_silent" and finding.level > Level.OK:  # the bus finding says it
            finding = replace(finding, level=bus.level, code=bus.code, state="silent", sound=bus.sound,
                              shown_by=bus.subject)
        findings.append(finding)
    troubled = {f.subject for f in findings if f.level > Level.OK}
    for name, health in runtime.health().items():
        device = device_finding(name, Health(health))
        kind, _, rest = name.partition("/")
        stream_path = f"cameras/{rest}" if kind == "camera" else name
        if device.level == Level.WARN and stream_path in troubled:  # "answering late": its stream's alert says more
            device = replace(device, shown_by=stream_path)
        findings.append(device)
    command = runtime.command
    if runtime.link is not None:
        findings.append(command_finding(command.link_state, command.fault, command.enabled) if command is not None
                        else command_finding(runtime.link.state.value, runtime.link.fault, False))
    findings += buses.values()
    findings.append(disk_finding(monitor.disk["free_bytes"], monitor.disk["time_left_s"], str(monitor.out_dir),
                                 thresholds))
    findings.append(clock_finding(monitor.clock_jump[0] if monitor.clock_jump is not None else None))
    recorder = runtime.recorder
    findings.append(recorder_finding(recorder is not None, recorder.fault if recorder is not None else ""))
    return [_with_onset(finding, monitor.onsets) for finding in findings]


def alert_order(findings: list[Finding]) -> list[Finding]:
    """The problems among `findings`, loudest first: ERROR before WARN, then the oldest first; a finding another
    one already alerts about (`shown_by`) is left out."""
    problems = [f for f in findings if f.level > Level.OK and not f.shown_by]
    return sorted(problems, key=lambda f: (-int(f.level), -(f.since_s or 0.0)))


__all__ = ["Finding", "HealthThresholds", "Level", "Onsets", "alert_order", "assess", "subject_name",
           "watched_streams"]
