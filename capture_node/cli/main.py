"""The `excap` command line.

The parser is built from small modules; what a command needs is imported in its function, so `excap --help` and
`excap inspect` start fast and do not need the optional extras.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from excap import __version__
from excap.core.errors import ConfigError, ExcapError
from excap.core.extras import require_extra
from excap.core.periodic import Poller

if TYPE_CHECKING:
    from excap.record.recorder import Recorder

DEFAULT_OUT = Path("episodes")


def _positive(kind: type) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="excap", description="Excavator and wheel-loader teleoperation "
                                     "demonstration capture into HDF5 episodes.")
    parser.add_argument("--version", action="version", version=f"excap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    record = commands.add_parser("record", help="record one episode")
    source = record.add_mutually_exclusive_group(required=True)
    source.add_argument("--sim", action="store_true", help="record the simulated excavator and scripted operator")
    source.add_argument("--config", type=Path, metavar="STATION.yaml",
                        help="record the devices of a station config file")
    record.add_argument("--duration", type=_positive(float), default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C or SIGTERM)")
    record.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"episode folder (default: {DEFAULT_OUT}, or the station config's out_dir)")
    record.add_argument("--pattern", choices=["iso", "sae"], default=None,
                        help="control pattern (default: the profile's)")
    record.add_argument("--cameras", type=int, default=2, metavar="N", help="number of cameras (default: %(default)s)")
    record.add_argument("--profile", default=None, help="machine profile name or YAML file")
    record.add_argument("--fps", type=_positive(float), default=30.0, help="camera frame rate")
    record.add_argument("--width", type=_positive(int), default=640)
    record.add_argument("--height", type=_positive(int), default=480)
    record.add_argument("--jpeg-quality", type=int, default=90)
    record.add_argument("--seed", type=int, default=0, help="seed of the simulation and scripted operator")
    record.add_argument("--operator", default=None, help="pseudonymous operator id")
    record.add_argument("--certification", default=None, help="operator certificate reference")
    record.add_argument("--machine-id", default=None, help="(--sim) fleet id of the machine")
    record.add_argument("--site", default=None)
    record.add_argument("--task", default=None)
    record.add_argument("--notes", default=None)
    record.add_argument("--quiet", action="store_true", help="no live status line")

    render = commands.add_parser("render", help="review video: cameras side by side with sticks, commands, "
                                 "machine signals and events")
    render.add_argument("episode", type=Path)
    render.add_argument("--out", type=Path, required=True, metavar="VIDEO.mp4")
    render.add_argument("--fps", type=_positive(float), default=None, help="default: the first camera's rate")
    render.add_argument("--cameras", default=None, metavar="A,B", help="cameras to show (default: all)")
    render.add_argument("--no-progress", action="store_true")

    plot = commands.add_parser("plot", help="commands and CAN signals over time, events marked (PNG)")
    plot.add_argument("episode", type=Path)
    plot.add_argument("--out", type=Path, required=True, metavar="SIGNALS.png")
    plot.add_argument("--signals", default=None, metavar="Msg.Sig,...", help="CAN signals (default: key ones)")

    joystick = commands.add_parser("joystick", help="monitor or calibrate one joystick")
    joystick_actions = joystick.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("monitor", "live view of axes, buttons, rate and health"),
                         ("calibrate", "measure centre and range, write a calibration file")):
        sub = joystick_actions.add_parser(action, help=text)
        sub.add_argument("--config", type=Path, metavar="STATION.yaml", help="take the device from a station config")
        sub.add_argument("--device", metavar="NAME", help="with --config: the joystick's name")
        sub.add_argument("--type", help="without --config: driver type (a type of the joystick driver table)")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="without --config: a driver setting (port=/dev/ttyUSB0, device=..., source_address=43)")
        sub.add_argument("--duration", type=_positive(float), default=None, metavar="S")
        if action == "calibrate":
            sub.add_argument("--out", type=Path, required=True, metavar="CAL.yaml")
            sub.add_argument("--deadband", type=float, default=0.05)
            sub.add_argument("--expo", type=float, default=0.0)
            sub.add_argument("--invert", nargs="*", default=[], metavar="AXIS")
            sub.add_argument("--centre-s", type=_positive(float), default=2.0, help="seconds to hold sticks released")
            sub.add_argument("--sweep-s", type=_positive(float), default=8.0, help="seconds to sweep every axis")

    from excap.cli.annotate import add_annotate_parser
    from excap.cli.datasets import add_dataset_parsers
    from excap.cli.delivery import add_partner_parser, add_pull_parser, add_push_parser, add_serve_parser
    from excap.cli.node import add_node_parser
    from excap.cli.replay import add_replay_parser
    from excap.cli.station import add_station_parser
    from excap.people.admin import add_operator_parser
    from excap.people.ledger import add_ledger_parser

    add_node_parser(commands)
    add_replay_parser(commands)
    add_dataset_parsers(commands)
    for add in (add_partner_parser, add_serve_parser, add_push_parser, add_pull_parser, add_operator_parser,
                add_annotate_parser, add_ledger_parser, add_station_parser):
        add(commands)

    check = commands.add_parser("check-config", help="report every mistake in station config files")
    check.add_argument("configs", type=Path, nargs="*", metavar="STATION.yaml")
    check.add_argument("--json-schema", choices=("station", "profile"), default=None,
                       help="print the JSON Schema of station configs or machine profiles (for editors) instead")

    bench = commands.add_parser("bench", help="built-in benchmarks (JSON)")
    bench_kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    safety = bench_kinds.add_parser("safety", help="worst and p99 time to neutral over injected input losses")
    safety.add_argument("--losses", type=int, default=90, help="injected losses (default: %(default)s)")
    safety.add_argument("--rate", type=_positive(float), default=50.0, help="command rate Hz (default: %(default)s)")
    safety.add_argument("--timeout-ms", type=_positive(float), default=100.0,
                        help="input stale timeout (default: %(default)s)")

    inspect = commands.add_parser("inspect", help="per-stream counts, rates, gaps and drops of an episode")
    inspect.add_argument("episode", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")

    validate = commands.add_parser("validate", help="check episodes against the schema in schemas/")
    validate.add_argument("episodes", type=Path, nargs="+")

    recover = commands.add_parser("recover", help="rebuild episodes from journals left by a crash")
    recover.add_argument("dir", type=Path)

    can_parser = commands.add_parser("can", help="import CAN logs as episodes, export episodes' CAN frames as logs")
    can_actions = can_parser.add_subparsers(dest="can_command", required=True, metavar="ACTION")
    can_import = can_actions.add_parser("import", help="write a CAN log (.log .asc .blf .trc .csv .mf4) as an episode")
    can_import.add_argument("log", type=Path)
    can_import.add_argument("--out", type=Path, required=True, metavar="EPISODE.h5")
    can_import.add_argument("--dbc", type=Path, default=None, help="decode the frames with this DBC")
    can_import.add_argument("--channel", default="can0", metavar="NAME",
                            help="stream name of a single-channel log (default: %(default)s)")
    can_import.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="episode metadata, e.g. machine_kind=wheel_loader (repeatable)")
    can_export = can_actions.add_parser("export", help="write an episode's raw CAN frames to a log (format by suffix)")
    can_export.add_argument("episode", type=Path)
    can_export.add_argument("--out", type=Path, required=True, metavar="LOG")
    can_export.add_argument("--channel", default=None, metavar="NAME", help="only this CAN channel (default: all)")
    return parser


class _StatusLine(Poller):
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


def _install_stop_signals(stop: threading.Event) -> None:
    def handler(signum: int, _frame: object) -> None:
        stop.set()
        stop.signal = signal.Signals(signum).name  # type: ignore[attr-defined]

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def cmd_record(args: argparse.Namespace) -> int:
    from excap.drivers.machine.profiles import DEFAULT_PROFILE
    from excap.episode.summary import summarize, summary_text
    from excap.station.config import load_station_config
    from excap.station.session import run_station_session
    from excap.station.sim import SimSessionOptions, run_sim_session

    config = load_station_config(args.config) if args.config else None
    if config is not None and args.out is not None:
        config.out_dir = args.out
    out_dir = config.out_dir if config is not None else (args.out or DEFAULT_OUT)
    from excap.record.recovery import report_recovery

    report_recovery(out_dir)
    stop = threading.Event()
    _install_stop_signals(stop)
    show_status = not args.quiet and sys.stderr.isatty()
    recorders: list[Recorder] = []

    def started(recorder: Recorder) -> None:
        recorders.append(recorder)
        print(f"recording {recorder.paths.final} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if show_status:
            _StatusLine(recorder, stop)

    overrides = {"operator": args.operator, "certification": args.certification, "site": args.site,
                 "task": args.task, "notes": args.notes}
    if config is not None:
        path = run_station_session(config, stop, duration_s=args.duration, on_started=started,
                                   overrides={k: v for k, v in overrides.items() if v is not None}, seed=args.seed)
    else:
        options = SimSessionOptions(
            out_dir=out_dir, duration_s=args.duration, pattern=args.pattern, cameras=args.cameras,
            width=args.width, height=args.height, fps=args.fps, jpeg_quality=args.jpeg_quality, seed=args.seed,
            profile=args.profile or DEFAULT_PROFILE, machine_id=args.machine_id or "sim-excavator-01",
            operator_id=args.operator or "sim-operator", certification=args.certification or "",
            site=args.site or "simulated-site", task=args.task or "dig-and-load", notes=args.notes or "",
        )
        path = run_sim_session(options, stop, on_started=started)
    stop.set()
    print(path)
    print(summary_text(summarize(path)), file=sys.stderr)
    fault = recorders[0].fault if recorders else ""
    if fault:
        print(f"excap: error: {fault}; the episode holds what was recorded before: {path}", file=sys.stderr)
        return 2
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from excap.review.render import render_review_video

    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists")
    cameras = args.cameras.split(",") if args.cameras else None
    frames = render_review_video(args.episode, args.out, fps=args.fps, cameras=cameras, progress=not args.no_progress,
                                 note=lambda text: print(f"excap render: {text}", file=sys.stderr))
    print(f"{args.out}: {frames} frames")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    require_extra("plot", "review", "matplotlib")
    from excap.review.plot import plot_signals

    signals = args.signals.split(",") if args.signals else None
    print(plot_signals(args.episode, args.out, signals))
    return 0


def _joystick_spec(args: argparse.Namespace) -> dict[str, object]:
    import yaml

    from excap.station.config import load_station_config

    if args.config is not None:
        config = load_station_config(args.config)
        entry = next((j for j in config.joysticks if j.name == args.device), None)
        if entry is None:
            names = ", ".join(j.name for j in config.joysticks) or "none"
            raise ConfigError(f"{args.config}: no joystick named {args.device!r} (has: {names})")
        from excap.station.joystick_types import JoystickSetup, joystick_type

        setup = JoystickSetup(entry.name, entry.axes, entry.buttons, entry.options)
        spec: dict[str, object] = {"type": entry.type, **joystick_type(entry.type).config_values(setup)}
        if entry.bus is not None:  # j1939: the tools open the joystick's bus themselves
            bus = next(c for c in config.cans if c.name == entry.bus)
            spec.update(interface=bus.interface, channel=str(bus.channel))
            if bus.bitrate:
                spec["bitrate"] = bus.bitrate
        return spec
    if args.type is None:
        raise ConfigError("joystick: give --config STATION.yaml --device NAME, or --type with --set KEY=VALUE")
    from excap.station.joystick_types import joystick_type

    try:
        joystick_type(args.type)
    except ValueError as exc:
        raise ConfigError(f"joystick: --type: {exc}") from None
    spec = {"type": args.type}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"joystick: --set {item!r} is not KEY=VALUE")
        spec[key] = yaml.safe_load(value)
    return spec


def cmd_joystick(args: argparse.Namespace) -> int:
    from excap.cli.joystick_tools import format_calibration, joystick_factory, monitor, run_calibration
    from excap.drivers.joystick.calibration import save_calibration

    factory = joystick_factory(_joystick_spec(args))
    if args.action == "monitor":
        monitor(factory, sys.stdout, args.duration)
        return 0
    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists")

    def prompt(text: str) -> None:
        if sys.stdin.isatty():
            input(f"{text}  [Enter] ")
        else:
            print(text, flush=True)

    calibration = run_calibration(factory, sys.stdout, prompt, centre_s=args.centre_s, sweep_s=args.sweep_s,
                                  deadband=args.deadband, expo=args.expo, invert=args.invert)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_calibration(calibration, args.out)
    print(format_calibration(calibration))
    print(f"saved {args.out}")
    return 0


def _delegate(module: str, function: str, args: argparse.Namespace) -> int:
    """Run a command implemented in its own module (imported only when that command runs)."""
    return int(getattr(importlib.import_module(module), function)(args))


def _cmd_node(args: argparse.Namespace) -> int:
    from excap.cli.node import cmd_node

    return cmd_node(args)


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.json_schema is not None:
        from excap.station.json_schema import json_schema_text

        sys.stdout.write(json_schema_text(args.json_schema))
        return 0
    if not args.configs:
        raise ConfigError("check-config: give one or more STATION.yaml files, or --json-schema station|profile")
    from excap.station.config import load_station_config

    failed = 0
    for path in args.configs:
        try:
            config = load_station_config(path)
        except ConfigError as exc:
            failed += 1
            print(exc)
            continue
        print(f"{path}: ok ({config.profile.name}, pattern {config.pattern}, {len(config.joysticks)} joysticks, "
              f"{len(config.cans)} CAN buses, {len(config.cameras)} cameras)")
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from excap.station.safety_bench import run_safety_bench

    result = run_safety_bench(losses=args.losses, rate_hz=args.rate, timeout_s=args.timeout_ms / 1000.0)
    print(json.dumps(result, indent=2))
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from excap.episode.summary import summarize, summary_json, summary_text

    summary = summarize(args.episode)
    print(summary_json(summary) if args.json else summary_text(summary))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from excap.episode.quality import file_warnings
    from excap.episode.validation import validate_episode

    failed = 0
    for path in args.episodes:
        problems = validate_episode(path)
        if problems:
            failed += 1
            for problem in problems:
                print(problem)
        else:
            print(f"{path}: valid")
        for warning in file_warnings(path):  # quality, not schema: they do not make the file invalid
            print(f"{path}: WARNING: {warning}")
    return 1 if failed else 0


def cmd_recover(args: argparse.Namespace) -> int:
    from excap.record.recovery import recover_directory

    if not args.dir.is_dir():
        raise ExcapError(f"{args.dir}: no such folder")
    results = recover_directory(args.dir)
    if not results:
        print(f"{args.dir}: no journals to recover")
    for result in results:
        if result.resolved:
            print(result.line())
        else:
            print(f"excap: error: {result.line()}", file=sys.stderr)
    return 0 if all(result.resolved for result in results) else 2


def cmd_can(args: argparse.Namespace) -> int:
    log = args.out if args.can_command == "export" else args.log
    if ".mf4" in (suffix.lower() for suffix in log.suffixes):
        require_extra(f"can {args.can_command}", "mf4", "asammdf")  # python-can reads and writes MF4 with it
    from excap.convert.can_logs import export_can_log, import_can_log_report

    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists, not overwriting")
    if args.can_command == "export":
        count = export_can_log(args.episode, args.out, args.channel)
        print(args.out)
        print(f"{count} frames", file=sys.stderr)
        return 0
    pairs = [item.partition("=") for item in args.set]
    if any(not key or not sep for key, sep, _ in pairs):
        raise ExcapError("--set takes KEY=VALUE")
    report = import_can_log_report(args.log, args.out, args.dbc, args.channel,
                                   **{key: value for key, _, value in pairs})
    print(report.path)
    print(report.summary(), file=sys.stderr)
    return 0


COMMANDS = {"record": cmd_record, "inspect": cmd_inspect, "validate": cmd_validate, "recover": cmd_recover,
            "check-config": cmd_check_config, "bench": cmd_bench, "render": cmd_render, "plot": cmd_plot,
            "joystick": cmd_joystick, "node": _cmd_node,
            "replay": lambda args: _delegate("excap.cli.replay", "cmd_replay", args),
            "index": lambda args: _delegate("excap.cli.datasets", "cmd_index", args),
            "list": lambda args: _delegate("excap.cli.datasets", "cmd_list", args),
            "export": lambda args: _delegate("excap.cli.datasets", "cmd_export", args),
            "partner": lambda args: _delegate("excap.cli.delivery", "cmd_partner", args),
            "serve": lambda args: _delegate("excap.cli.delivery", "cmd_serve", args),
            "push": lambda args: _delegate("excap.cli.delivery", "cmd_push", args),
            "pull": lambda args: _delegate("excap.cli.delivery", "cmd_pull", args),
            "operator": lambda args: _delegate("excap.people.admin", "cmd_operator", args),
            "annotate": lambda args: _delegate("excap.cli.annotate", "cmd_annotate", args),
            "ledger": lambda args: _delegate("excap.people.ledger", "cmd_ledger", args),
            "station": lambda args: _delegate("excap.cli.station", "cmd_station", args),
            "can": cmd_can}


def _discard_stdout() -> None:
    """The reader of our output went away (`excap inspect EP | head`): whatever is still written goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a file descriptor (e.g. captured)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (stays open until the interpreter exits)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        _discard_stdout()
        return 1
    except ExcapError as exc:
        print(f"excap: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
