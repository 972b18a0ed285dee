"""`excap record`: record one episode of a simulated machine (`--sim`) or of a station config's devices, with a
live status line on a terminal, until a duration passed or Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from excap.cli.arguments import non_negative, positive
from excap.core.periodic import Poller
from excap.core.stop_request import StopRequest
from excap.drivers.can.lean_import import import_can_without_mf4

if TYPE_CHECKING:
    from excap.record.recorder import Recorder
    from excap.station.runtime import StationRuntime

DEFAULT_OUT = Path("episodes")
POLICY_CHOICES = ("refuse", "mark", "mark_uncertified")
IGNORED_CERTIFICATION = ("excap: warning: --certification is ignored: the episode's certification comes from the "
                         "operator registry check")


def add_record_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    record = commands.add_parser("record", help="record one episode")
    source = record.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true",
                        help="record the simulated machine of the profile's kind and its scripted operator")
    source.add_argument("--config", type=Path, metavar="STATION.yaml",
                        help="record the devices of a station config file")
    record.add_argument("--duration", type=positive(float), default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    record.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"episode folder (default: {DEFAULT_OUT}, or the station config's out_dir)")
    record.add_argument("--pattern", default=None,
                        help="control pattern of the profile, e.g. iso, sae (excavator), single_lever, two_lever "
                             "(wheel loader); default: the profile's")
    record.add_argument("--cameras", type=int, default=2, metavar="N", help="number of cameras (default: %(default)s)")
    record.add_argument("--profile", default=None, help="machine profile name or YAML file")
    record.add_argument("--fps", type=positive(float), default=30.0, help="camera frame rate")
    record.add_argument("--width", type=positive(int), default=640)
    record.add_argument("--height", type=positive(int), default=480)
    record.add_argument("--jpeg-quality", type=int, default=90)
    record.add_argument("--seed", type=int, default=0, help="seed of the simulation and scripted operator")
    record.add_argument("--operator", default=None, help="pseudonymous operator id")
    record.add_argument("--certification", default=None,
                        help="ignored: the certification comes from the operator registry check")
    record.add_argument("--certification-policy", choices=POLICY_CHOICES, default=None,
                        help="refuse an operator the registry does not certify, or mark the episode uncertified "
                             "(default: the station config's; --sim: mark)")
    record.add_argument("--wait-devices", type=non_negative(float), default=5.0, metavar="S",
                        help="wait up to S seconds for the required devices to deliver (default: %(default)s)")
    record.add_argument("--start-anyway", action="store_true",
                        help="start even if required devices have not delivered (recorded as a start_override event)")
    record.add_argument("--machine-id", default=None, help="(--sim) fleet id of the machine")
    record.add_argument("--site", default=None)
    record.add_argument("--task", default=None)
    record.add_argument("--notes", default=None)
    record.add_argument("--quiet", action="store_true", help="no live status line")
    return record


class StatusLine(Poller):
    """One line on stderr, refreshed every second: is every stream alive, is anything dropping?"""

    def __init__(self, recorder: Recorder, stop: threading.Event) -> None:
        super().__init__("status-line", 1.0, self._refresh, stop=stop)
        self.recorder = recorder
        self.start()

    def run(self) -> None:
        super().run()
        sys.stderr.write("\r\033[K")

    def _refresh(self) -> bool:
        if not self.recorder.running:
            return False
        parts = []
        for s in self.recorder.status():
            if "/decoded/" in s.path or s.path == "events":
                continue
            parts.append(f"{s.path.split('/')[-1]} {s.rate_hz:.0f}Hz" + (f" DROP {s.dropped}" if s.dropped else ""))
        elapsed = (self.recorder.status()[0].last_t_ns or self.recorder.start_t_ns) - self.recorder.start_t_ns
        sys.stderr.write(f"\r\033[K● REC {elapsed / 1e9:6.1f}s  " + "  ".join(parts))
        sys.stderr.flush()
        return True


def cmd_record(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM end the recording (finalized) from the first moment, also while the libraries below load.
    stop = StopRequest().install().requested
    import_can_without_mf4()
    from excap.drivers.machine.profiles import DEFAULT_PROFILE
    from excap.episode.summary import summarize, summary_text
    from excap.record.recovery import report_recovery
    from excap.station.config import load_station_config
    from excap.station.session import StoppedBeforeStart, run_station_session
    from excap.station.sim import SIM_POLICY, SimSessionOptions, run_sim_session

    config = load_station_config(args.config) if args.config else None
    if config is not None and args.out is not None:
        config.out_dir = args.out
    if config is not None and args.certification_policy:
        config.session["certification_policy"] = args.certification_policy
    if args.certification is not None:
        print(IGNORED_CERTIFICATION, file=sys.stderr)
    out_dir = config.out_dir if config is not None else (args.out or DEFAULT_OUT)
    report_recovery(out_dir)
    show_status = not args.quiet and sys.stderr.isatty()
    recorders: list[Recorder] = []
    runtimes: list[StationRuntime] = []

    def started(recorder: Recorder) -> None:
        recorders.append(recorder)
        print(f"recording {recorder.paths.final} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if show_status:
            StatusLine(recorder, stop)

    overrides = {"operator": args.operator, "site": args.site, "task": args.task, "notes": args.notes}
    gate = {"wait_devices_s": args.wait_devices, "start_anyway": args.start_anyway}
    try:
        if config is not None:
            path = run_station_session(config, stop, duration_s=args.duration, on_started=started,
                                       overrides={k: v for k, v in overrides.items() if v is not None}, seed=args.seed,
                                       on_open=runtimes.append, **gate)
        else:
            options = SimSessionOptions(
                out_dir=out_dir, duration_s=args.duration, pattern=args.pattern, cameras=args.cameras,
                width=args.width, height=args.height, fps=args.fps, jpeg_quality=args.jpeg_quality, seed=args.seed,
                profile=args.profile or DEFAULT_PROFILE, machine_id=args.machine_id or "",
                operator_id=args.operator or "sim-operator", site=args.site or "simulated-site",
                task=args.task, notes=args.notes or "",
                certification_policy=args.certification_policy or SIM_POLICY,
            )
            path = run_sim_session(options, stop, on_started=started, on_open=runtimes.append, **gate)
    except StoppedBeforeStart as exc:  # Ctrl-C while the devices opened: nothing recorded
        print(f"excap: {exc}", file=sys.stderr)
        return 130
    stop.set()
    print(path)
    print(summary_text(summarize(path)), file=sys.stderr)
    fault = recorders[0].fault if recorders else ""
    if fault:
        print(f"excap: error: {fault}; the episode holds what was recorded before: {path}", file=sys.stderr)
        return 2
    device_faults = runtimes[0].faults() if runtimes else []
    if device_faults:  # a device's thread died: the episode says so in a `fault` event, and so does the exit status
        failed = "; ".join(f"{f.device} ({f.error})" for f in device_faults)
        print(f"excap: error: device failed while recording: {failed}; see the fault events in {path}",
              file=sys.stderr)
        return 2
    return 0
