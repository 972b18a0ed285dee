"""A running station's live status: streams, CAN load, sticks and commands, recording, disk, warnings.

`StationMonitor` samples what needs history on a thread of its own (every `interval_s`): the wall clock against
the monotonic clock (a jump beyond `clock_jump_s` between two samples is a warning for `warn_hold_s`, and a
`clock_jump` event), disk space and the episode folder's write rate (growth of the files being recorded), and
which streams dropped rows lately, and when each current problem began (`onsets`). `station_status()` turns all of
it into one JSON-ready dict for the page, the JSON API and the terminal status line: among others `alerts` (every
problem in plain words, loudest first), `camera_frames` (each camera's latest picture's age, `frozen` beyond
`stale_after_s`), and what a page needs to tell what it missed while it could not reach the station: `seq` (this
status's number), `boot_id` (this station process), `wall_time`, `message_seq` (the latest message's number).
"""

from __future__ import annotations

import itertools
import shutil
import time
import uuid
from collections.abc import Callable
from typing import Any

from excap.core.clock import now_ns
from excap.core.periodic import Poller
from excap.drivers.base import Health
from excap.station.bindings import StationBindings
from excap.station.control import StationController
from excap.station.health import Finding, HealthThresholds, Level, Onsets, alert_order, assess, watched_streams
from excap.station.runtime import StationRuntime
from excap.uplink.status import CachedSummary

BITS_PER_FRAME = 140  # a 29-bit-id frame with 8 data bytes, with typical bit stuffing (J1939 traffic)
RECORDING_DIR = ".recording"
COLOURS = {Level.WARN: "amber", Level.ERROR: "red"}  # how the page shows a finding's level
MESSAGES_SHOWN = 20  # the latest station messages in each status
BOOT_ID = uuid.uuid4().hex  # this station process: a page that sees it change knows the station restarted


StatusThresholds = HealthThresholds
"""The station's health thresholds (see `excap.station.health`)."""


class StationMonitor:
    def __init__(self, runtime: StationRuntime, thresholds: StatusThresholds | None = None, interval_s: float = 0.25,
                 wall_ns: Callable[[], int] = time.time_ns, mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.runtime = runtime
        self.thresholds = thresholds or StatusThresholds()
        self.interval_s = interval_s
        self.wall_ns = wall_ns
        self.mono_ns = mono_ns
        self.out_dir = runtime.config.out_dir
        self.uplink = CachedSummary(self.out_dir)  # `excap upload` beside the station: its queue and last error
        self.disk: dict[str, Any] = {"free_bytes": None, "total_bytes": None, "write_rate_bps": 0.0,
                                     "time_left_s": None}
        self.clock_jump: tuple[float, float] | None = None  # (size in s, monotonic time seen)
        self.recent_drops: dict[str, tuple[int, float]] = {}  # stream -> (rows lost lately, monotonic time)
        self._drops: dict[str, int] = {}
        self._first_data: dict[str, float] = {}  # stream -> monotonic time its first sample was seen
        self._offset_ns: int | None = None
        self._sizes: list[tuple[float, int]] = []
        self.onsets = Onsets()
        self.started = time.monotonic()
        self._worker = Poller("station-monitor", interval_s, self.sample)

    def start(self) -> StationMonitor:
        self.sample()
        self._worker.start()
        return self

    def stop(self) -> None:
        self._worker.stop()

    def sample(self) -> None:
        now = time.monotonic()
        self._sample_clock(now)
        self._sample_disk(now)
        for stream in self.runtime.stream_status():
            if stream.samples:
                self._first_data.setdefault(stream.path, now)
            before = self._drops.get(stream.path, stream.dropped)
            self._drops[stream.path] = stream.dropped
            if stream.dropped > before:
                lost = stream.dropped - before + self.recent_drops.get(stream.path, (0, 0.0))[0]
                self.recent_drops[stream.path] = (lost, now)
        for path, (_lost, seen) in list(self.recent_drops.items()):
            if now - seen > self.thresholds.warn_hold_s:
                del self.recent_drops[path]

    def uptime_s(self) -> float:
        return time.monotonic() - self.started

    def active_s(self, path: str) -> float | None:
        """How long the stream has delivered data (None before its first sample was seen)."""
        first = self._first_data.get(path)
        return None if first is None else time.monotonic() - first

    def _sample_clock(self, now: float) -> None:
        offset = self.wall_ns() - self.mono_ns()
        if self._offset_ns is not None:
            jump = (offset - self._offset_ns) / 1e9
            if abs(jump) > self.thresholds.clock_jump_s:
                self.clock_jump = (jump, now)
                self.runtime.switch.event("clock_jump", jump_s=round(jump, 6))
        self._offset_ns = offset
        if self.clock_jump is not None and now - self.clock_jump[1] > self.thresholds.warn_hold_s:
            self.clock_jump = None

    def _sample_disk(self, now: float) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        usage = shutil.disk_usage(self.out_dir)
        self.disk["free_bytes"], self.disk["total_bytes"] = usage.free, usage.total
        if self.runtime.recording:
            size = sum(p.stat().st_size for p in (self.out_dir / RECORDING_DIR).glob("*") if p.is_file())
            self._sizes = [s for s in self._sizes if now - s[0] <= 5.0] + [(now, size)]
            (t0, s0), (t1, s1) = self._sizes[0], self._sizes[-1]
            if t1 - t0 >= 1.0 and s1 >= s0:
                self.disk["write_rate_bps"] = (s1 - s0) / (t1 - t0)
        else:
            self._sizes = []
        rate = self.disk["write_rate_bps"]
        self.disk["time_left_s"] = usage.free / rate if rate > 0 else None


def _stream_kind(path: str) -> str:
    return path.split("/")[0]


def _operator_inputs(runtime: StationRuntime) -> dict[str, Any]:
    samples = runtime.joystick_samples()
    config = runtime.config

    def value(source: Any, field: str) -> float | None:
        sample = samples.get(source.device)
        values = getattr(sample, field) if sample is not None else ()
        return float(values[source.index]) if source.index < len(values) else None

    axes = {name: value(source, "axes") for name, source in config.axis_inputs.items()}
    buttons = {name: value(source, "buttons") for name, source in config.button_inputs.items()}
    return {"axes": axes, "buttons": {k: bool(v) for k, v in buttons.items() if v is not None}}


def alert(finding: Finding, wall_now: float) -> dict[str, Any]:
    """A problem as the page's alert area shows it."""
    since = finding.since_s
    return {"id": f"{finding.subject}:{finding.code}", "subject": finding.subject, "code": finding.code,
            "level": finding.level.name.lower(), "colour": COLOURS[finding.level], "title": finding.title,
            "meaning": finding.meaning, "action": finding.action, "since_s": None if since is None else round(since, 1),
            "since_wall": None if since is None else round(wall_now - since, 3),
            "sound": finding.sound, "text": finding.text}


def camera_frames(runtime: StationRuntime, stale_after_s: float) -> dict[str, dict[str, Any]]:
    """Each camera's latest frame: its age and whether the preview is frozen (older than `stale_after_s`)."""
    t_ns = now_ns()
    frames: dict[str, dict[str, Any]] = {}
    for name in sorted(runtime.cameras):
        frame = runtime.latest_frame(name)
        age = None if frame is None else max(0.0, (t_ns - frame.t_ns) / 1e9)
        frames[name] = {"age_s": None if age is None else round(age, 2),
                        "frozen": age is not None and age > stale_after_s}
    return frames


_STATUS_SEQ = itertools.count(1)


def station_status(runtime: StationRuntime, controller: StationController, monitor: StationMonitor,
                   bindings: StationBindings | None = None) -> dict[str, Any]:
    config, profile = runtime.config, runtime.profile
    findings = assess(runtime, monitor)
    wall_now = time.time()
    messages = controller.message_list(MESSAGES_SHOWN)
    warnings = [{"level": COLOURS[f.level], "code": f.code, "text": f.text} for f in findings if f.level > Level.OK]
    by_subject = {f.subject: f for f in findings}
    command = runtime.command
    recording = controller.recording_state()
    streams = []
    for stream in watched_streams(runtime):
        finding = by_subject.get(stream.path)
        if finding is None:  # a stream that appeared since the findings were made
            continue
        streams.append({"path": stream.path, "kind": _stream_kind(stream.path), "rate_hz": round(stream.rate_hz, 1),
                        "samples": stream.samples, "dropped": stream.dropped, "state": finding.state,
                        "level": finding.level.name.lower(),
                        "staleness_s": None if stream.staleness_s is None else round(stream.staleness_s, 3),
                        "recording": stream.recording})
    health = {name: str(h.value if isinstance(h, Health) else h) for name, h in runtime.health().items()}
    rates = runtime.can_rates()
    buses = []
    for bus in config.cans:
        capture = runtime.captures.get(bus.name)
        rate = rates.get(bus.name, 0.0)
        bus_level = by_subject.get(f"can bus {bus.name}")
        buses.append({"name": bus.name, "frames_per_s": round(rate, 1), "bitrate": bus.bitrate,
                      "load_pct": round(100.0 * rate * BITS_PER_FRAME / bus.bitrate, 1) if bus.bitrate else None,
                      "error_frames": capture.error_frames if capture else 0,
                      "bus_state": capture.bus_state.name.lower() if capture else "",
                      "level": bus_level.level.name.lower() if bus_level else "ok",
                      "state": bus_level.state if bus_level else "ok",
                      "health": health.get(f"can/{bus.name}", "")})
    disk = dict(monitor.disk)
    clock: dict[str, float | None] = {"jump_s": None if monitor.clock_jump is None else round(monitor.clock_jump[0], 3)}
    inputs = _operator_inputs(runtime)
    enable_held = inputs["buttons"].get(profile.enable_button, False)
    check = controller.last_check
    pending = bindings.pending() if bindings is not None else None
    return {
        "station": config.station_id,
        "machine": {"id": config.machine_id, "kind": profile.kind, "model": profile.model, "profile": profile.name,
                    "pattern": runtime.mapper.pattern.name},
        "recording": recording,
        "last_episode": controller.last_episode,
        "streams": streams,
        "devices": health,
        "levels": {f.subject: f.level.name.lower() for f in findings},
        "can": buses,
        "cameras": sorted(runtime.cameras),
        "camera_frames": camera_frames(runtime, monitor.thresholds.stale_after_s),
        "sticks": inputs,
        "command": {"names": list(profile.functions), "values": list(command.values) if command else [],
                    "enabled": bool(command and command.enabled),
                    "link_state": command.link_state if command else ("none" if runtime.link is None else "disabled"),
                    "fault": command.fault if command else ""},
        "enable": {"button": profile.enable_button, "held": enable_held},
        "disk": disk,
        "uplink": monitor.uplink(),
        "clock": clock,
        "warnings": warnings,
        "alerts": [alert(f, wall_now) for f in alert_order(findings)],
        "messages": messages,
        "message_seq": messages[-1]["seq"] if messages else 0,  # the latest message's number
        "session": dict(controller.session),
        "certification": None if check is None else {"allowed": check.allowed, "message": check.message,
                                                      "metadata": check.metadata},
        "bindings": {"list": bindings.describe() if bindings is not None else [],
                     "pending": pending.text() if pending is not None else ""},
        "t_ns": now_ns(),
        "wall_time": wall_now,
        "seq": next(_STATUS_SEQ),
        "boot_id": BOOT_ID,
    }


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def status_line(status: dict[str, Any]) -> str:
    """One line: recording state and timer, link, per-stream health, disk, alerts (loudest first)."""
    recording = status["recording"]
    head = f"● REC {_duration(recording['elapsed_s'])}" if recording["active"] else "○ idle"
    parts = [head, f"link {status['command']['link_state']}"]
    for stream in status["streams"]:
        name = stream["path"].split("/")[-1] if stream["kind"] != "control" else "control"
        mark = "" if stream["state"] == "ok" else f" {stream['state'].upper()}"
        parts.append(f"{name} {stream['rate_hz']:.0f}Hz{mark}")
    free = status["disk"]["free_bytes"]
    if free is not None:
        left = status["disk"]["time_left_s"]
        parts.append(f"disk {free / 1e9:.0f}GB" + (f" ~{_duration(left)}" if left else ""))
    if status["bindings"]["pending"]:
        parts.append(f"[{status['bindings']['pending']}]")
    alerts = status["alerts"]
    if alerts:
        parts.append("⚠ " + "; ".join(a["title"] for a in alerts))
    elif status["messages"]:
        parts.append(status["messages"][-1]["text"])
    return "  ".join(parts)
