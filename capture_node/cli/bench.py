"""`excap bench`: built-in benchmarks printing JSON on stdout.

`safety`: how fast the command path goes neutral when operator input fails. `capture`: camera streams produced by
another process recorded by excap (with 2,000 CAN frames/s and a 200 Hz joystick), CPU per frame, drops, peak RSS
and stop-to-file time, and with `--compare` the same for the floor, ALOHA-, LeRobot- and MCAP-style recorders."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from excap.cli.arguments import positive
from excap.core.errors import ConfigError, MissingExtraError
from excap.drivers.limits import CAMERA_FPS, CAMERA_SIZE, DURATION_S, Limits


def camera_size(text: str) -> tuple[int, int]:
    """`640x480` -> (640, 480)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
        return CAMERA_SIZE.check(width, "width"), CAMERA_SIZE.check(height, "height")
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT such as 640x480 ({exc})") from None


STREAMS = Limits(1, 64, integer=True)
RAM_CAP_MB = Limits(16, 1_000_000)


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
    capture.add_argument("--size", type=camera_size, default=(640, 480), metavar="WxH",
                         help="frame size (default: 640x480)")
    capture.add_argument("--fps", type=within(CAMERA_FPS), default=30.0,
                         help="frames per second (default: %(default)s)")
    capture.add_argument("--seconds", type=within(DURATION_S), default=60.0,
                         help="recording time of each recorder (default: %(default)s)")
    capture.add_argument("--compare", action="store_true",
                         help="also the floor (JPEG + HDF5 append), ALOHA-, LeRobot- and MCAP-style recorders")
    capture.add_argument("--ram-cap-mb", type=within(RAM_CAP_MB), default=2048.0,
                         help="--compare: stop the ALOHA-style run at this much RAM (default: %(default)s)")
    return bench


def cmd_bench(args: argparse.Namespace) -> int:
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
