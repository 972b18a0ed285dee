"""What `excap joystick monitor` and `excap joystick calibrate` show and ask on the terminal: a live view of a
joystick (redrawn in place on a terminal, one line per refresh otherwise) and the guided centre-and-sweep
calibration."""

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TextIO

from excap.cli.joystick_tools import DriverFactory, driver_axis_names, driver_name
from excap.core.clock import now_ns
from excap.core.errors import ConfigError, DriverError
from excap.core.periodic import Cadence, Late
from excap.drivers.base import DriverCounters, Health
from excap.drivers.joystick.base import JoystickSample
from excap.drivers.joystick.calibration import Calibrator, DeviceCalibration

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
