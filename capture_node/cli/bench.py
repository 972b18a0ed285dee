"""`excap bench`: built-in benchmarks printing JSON on stdout.

`safety`: how fast the command path goes neutral when operator input fails. `capture`: camera streams produced by
another process recorded by excap (with 2,000 CAN frames/s and a 200 Hz joystick), CPU per frame, drops, peak RSS
and stop-to-file time, and with `--compare` the same for the floor, ALOHA-, LeRobot- and MCAP-style recorders.
`soak`: hours of episodes one after another (the simulated station, or a station config's devices: a burn-in),
memory, drops, disk use and CPU over time as JSON lines; `--resume` continues one whose process ended; `--report LOG`
summarises one per episode."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from excap.cli.arguments import positive
from excap.core.errors import ConfigError, MissingExtraError
from excap.drivers.limits import CAMERA_FPS, CAMERA_SIZE, DURATION_S, SIM_CAMERAS, Limits


def camera_size(text: str) -> tuple[int, int]:
    """`640x480` -> (640, 480)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
        return CAMERA_SIZE.check(width, "width"), CAMERA_SIZE.check(height, "height")
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT such as 640x480 ({exc})") from None


STREAMS = Limits(1, 64, integer=True)
RAM_CAP_MB = Limits(16, 1_000_000)
SOAK_HOURS = Limits(0, 7 * 24, low_exclusive=True)
EPISODE_MINUTES = Limits(0, 24 * 60, low_exclusive=True)
SAMPLE_INTERVAL_S = Limits(0.1, 3600)
KEEP_EPISODES = Limits(1, 10_000, integer=True)


def within(limits: Limits) -> Callable[[str], Any]:
    """An argparse type: a number within `limits` (an int for whole-number limits)."""
    def parse(text: str) -> Any:
        try:
            return limits.check(text, "value")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value: ")) from None
    return parse


def require_compare_tools() -> None:
    """`--compare` runs a LeRobot-style recorder (PyAV) and an MCAP writer: one line if either is missing."""
    from excap.core.extras import require_extra

    require_extra("bench capture --compare", "exports", "av")
    try:
        import mcap  # noqa: F401
    except ImportError:
        raise MissingExtraError("'excap bench capture --compare' needs mcap: pip install 'excap[dev]'") from None


def add_frame_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    """--size WxH (default 640x480) and --fps (default 30) of the cameras a bench records."""
    parser.add_argument("--size", type=camera_size, default=(640, 480), metavar="WxH",
                        help=f"{whose}frame size (default: 640x480)")
    parser.add_argument("--fps", type=within(CAMERA_FPS), default=30.0,
                        help=f"{whose}frames per second (default: %(default)s)")


def add_bench_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    bench = commands.add_parser("bench", help="built-in benchmarks (JSON)")
    bench_kinds = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    safety = bench_kinds.add_parser("safety", help="worst and p99 time to neutral over injected input losses")
    safety.add_argument("--losses", type=int, default=90, help="injected losses (default: %(default)s)")
    safety.add_argument("--rate", type=positive(float), default=50.0, help="command rate Hz (default: %(default)s)")
    safety.add_argument("--timeout-ms", type=positive(float), default=100.0,
                        help="input stale timeout (default: %(default)s)")
    capture = bench_kinds.add_parser(
        "capture", help="camera streams from another process recorded with CAN and joystick load: CPU per frame, "
                        "drops, peak RSS, stop to finished file")
    capture.add_argument("--streams", type=within(STREAMS), default=4, help="camera streams (default: %(default)s)")
    add_frame_arguments(capture, "")
    capture.add_argument("--seconds", type=within(DURATION_S), default=60.0,
                         help="recording time of each recorder (default: %(default)s)")
    capture.add_argument("--compare", action="store_true",
                         help="also the floor (JPEG + HDF5 append), ALOHA-, LeRobot- and MCAP-style recorders")
    capture.add_argument("--ram-cap-mb", type=within(RAM_CAP_MB), default=2048.0,
                         help="--compare: stop the ALOHA-style run at this much RAM (default: %(default)s)")
    add_soak_parser(bench_kinds)
    return bench


def add_soak_parser(bench_kinds: argparse._SubParsersAction) -> None:
    soak = bench_kinds.add_parser(
        "soak", help="hours of episodes one after another: RSS, drops, disk use and CPU over time (JSON lines)")
    soak.add_argument("--hours", type=within(SOAK_HOURS), default=8.0, help="length of the run (default: %(default)s)")
    soak.add_argument("--episode-minutes", type=within(EPISODE_MINUTES), default=10.0,
                      help="length of each episode (default: %(default)s)")
    soak.add_argument("--interval", type=within(SAMPLE_INTERVAL_S), default=30.0, metavar="S",
                      help="seconds between samples (default: %(default)s)")
    soak.add_argument("--cameras", type=within(SIM_CAMERAS), default=2,
                      help="simulated cameras (default: %(default)s)")
    add_frame_arguments(soak, "simulated cameras: ")
    soak.add_argument("--keep", type=within(KEEP_EPISODES), default=3,
                      help="clean finished episodes kept on disk, older ones deleted; one with drops or validation "
                           "problems is always kept (default: %(default)s)")
    devices = soak.add_mutually_exclusive_group()
    devices.add_argument("--station", action="store_true",
                         help="keep the simulated station's devices open for the whole run (as excap station does)")
    devices.add_argument("--config", type=Path, metavar="STATION.yaml",
                         help="a station config's devices, open for the whole run (a burn-in)")
    soak.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="episodes in DIR/episodes, the log in DIR/soak.jsonl (default: a new temporary folder)")
    soak.add_argument("--log", type=Path, default=None, help="the JSON lines file (default: DIR/soak.jsonl)")
    soak.add_argument("--resume", action="store_true",
                      help="continue the soak in --out DIR after its process ended (a restart, a kill): the episode "
                           "cut off is recovered and counted, time and episodes count on, --hours is the total")
    soak.add_argument("--report", type=Path, default=None, metavar="LOG",
                      help="print the per-episode report of a soak's JSON lines (finished or running) and exit")


def cmd_soak(args: argparse.Namespace) -> int:
    from excap.core.stop_request import StopRequest

    stop = StopRequest().install().requested  # Ctrl-C / SIGTERM: the running episode is finished, then the summary
    from excap.bench.soak import SoakSettings, run_soak
    from excap.bench.soak_log import read_log, report

    if args.report is not None:
        if not args.report.is_file():
            raise ConfigError(f"{args.report}: no such soak log")
        print(json.dumps(report(read_log(args.report)), indent=2))
        return 0
    from excap.drivers.can.lean_import import import_can_without_mf4

    import_can_without_mf4()
    config = None
    if args.config is not None:
        from excap.station.config import load_station_config

        config = load_station_config(args.config)  # every mistake reported before anything opens
    width, height = args.size
    settings = SoakSettings(hours=args.hours, episode_minutes=args.episode_minutes, interval_s=args.interval,
                            cameras=args.cameras, width=width, height=height, fps=args.fps, keep=args.keep,
                            devices_open=args.station, config=config, resume=args.resume)
    if args.resume and args.out is None:
        raise ConfigError("--resume needs the --out DIR of the soak to continue")
    out = args.out or Path(tempfile.mkdtemp(prefix="excap-soak-"))
    summary = run_soak(settings, out, args.log, echo=sys.stdout, stop=stop)
    return 130 if stop.is_set() else (0 if summary["drops"] == 0 and summary["invalid_episodes"] == 0 else 1)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench == "soak":
        return cmd_soak(args)
    if args.bench == "capture":
        from excap.bench.capture import run_capture_bench

        if args.compare:
            require_compare_tools()

        width, height = args.size
        result = run_capture_bench(streams=args.streams, width=width, height=height, seconds=args.seconds,
                                   fps=args.fps, compare=args.compare, ram_cap_mb=args.ram_cap_mb)
        print(json.dumps(result, indent=2))
        return 0 if all("error" not in run for run in result["runs"]) else 1
    from excap.station.safety_bench import run_safety_bench

    result = run_safety_bench(losses=args.losses, rate_hz=args.rate, timeout_s=args.timeout_ms / 1000.0)
    print(json.dumps(result, indent=2))
    return 0
