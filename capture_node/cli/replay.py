"""`excap replay EPISODE`: play an episode back at its recorded pace onto a CAN bus and/or ROS 2 topics.

Wiring in capture_node/cli/main.py: `add_replay_parser(commands)` in build_parser, and
`COMMANDS["replay"] = cmd_replay`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import select
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from excap.core.errors import ConfigError
from excap.core.extras import missing_extra
from excap.replay.scheduler import MAX_GAP_S, ReplayStats

if TYPE_CHECKING:
    from excap.replay.player import Replay, Sink

MOVES_THE_MACHINE = "--i-understand-this-moves-the-machine"
VIRTUAL_NOTE = ("but python-can's 'virtual' bus reaches only this process: no other program receives them; "
                "to replay to another process or machine use socketcan (vcan0 on Linux) or slcan over a "
                "pseudo-terminal (docs/ros2.md#replaying-can-to-another-process)")

DESCRIPTION = """\
Play an episode back with the recorded timing: each sample goes out at
start + (t - t_start) / rate. Sinks: --ros republishes the streams as ROS 2
messages with their recorded stamps; --can sends the recorded CAN frames.

CAN replay is a DRY RUN unless --transmit is given: the frames that would be
sent are listed (candump format) and counted, and no bus is opened. Frames put
on a machine's bus MOVE THE MACHINE; transmitting onto any interface other than
python-can 'virtual' also needs --i-understand-this-moves-the-machine.

Pause / resume: space or 'p' (terminal), SIGUSR1, or the ROS services
~/pause and ~/resume of the excap_replay node. 'q', Ctrl-C or SIGTERM stop."""


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, not {text}")
    return value


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_replay_parser(subparsers: Any) -> argparse.ArgumentParser:
    replay = subparsers.add_parser("replay", help="play an episode back with its recorded timing (CAN bus, ROS 2)",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    replay.add_argument("episode", type=Path)
    timing = replay.add_argument_group("timing")
    timing.add_argument("--rate", type=_positive_float, default=1.0, help="speed factor, e.g. 0.5 or 2 (default 1)")
    timing.add_argument("--start", type=_seconds, default=None, metavar="S", help="begin S seconds after the "
                        "episode start")
    timing.add_argument("--end", type=_seconds, default=None, metavar="S", help="end S seconds after the episode "
                        "start")
    timing.add_argument("--loop", action="store_true", help="start over at the end, until stopped")
    timing.add_argument("--max-gap", type=_positive_float, default=MAX_GAP_S, metavar="S",
                        help=f"shorten stretches of recorded time without samples to S seconds (default {MAX_GAP_S:g})")
    timing.add_argument("--streams", type=_names, default=None, metavar="A,B",
                        help="only these streams (globs on paths: control, joystick/*, cameras/side, can/*, ...)")
    timing.add_argument("--paused", action="store_true", help="start paused (resume with space, SIGUSR1 or ~/resume)")
    ros = replay.add_argument_group("ROS 2")
    ros.add_argument("--ros", action="store_true", help="republish the streams on ROS 2 topics")
    ros.add_argument("--ros-prefix", default="/excap", metavar="PREFIX", help="topic prefix (default /excap)")
    ros.add_argument("--ros-stamps", choices=["utc", "monotonic"], default="utc",
                     help="header stamps: recorded t_ns as UTC (default) or as the recorded monotonic time")
    ros.add_argument("--clock", action="store_true", help="publish /clock with the recorded time (use_sim_time)")
    ros.add_argument("--ros-reliable", action="store_true", help="reliable QoS (default: sensor data, best effort)")
    ros.add_argument("--wait-subscribers", type=_count, default=0, metavar="N",
                     help="start only once N subscriptions to the replay's topics are matched, in all (a node "
                     "subscribed to 4 topics counts 4; see `ros2 topic info`)")
    ros.add_argument("--wait-subscribers-timeout", type=_positive_float, default=10.0, metavar="S",
                     help="give up (exit 2) if they are not there after S seconds (default 10)")
    bus = replay.add_argument_group("CAN (dry run unless --transmit)")
    bus.add_argument("--can", default=None, metavar="INTERFACE:CHANNEL",
                     help="replay CAN frames onto this python-can bus, e.g. virtual:replay0 or socketcan:can0")
    bus.add_argument("--can-source", type=_names, default=None, metavar="NAME[,NAME]",
                     help="recorded CAN streams to replay (default: every can/<channel>)")
    what = bus.add_mutually_exclusive_group()
    what.add_argument("--commands", action="store_true",
                      help="only the recorded command frames (J1939 BJM1 / EJM1)")
    what.add_argument("--commands-from-control", action="store_true",
                      help="command frames re-encoded from /control with the profile's cab joystick layout")
    bus.add_argument("--transmit", action="store_true", help="really send the frames (default: dry run)")
    bus.add_argument(MOVES_THE_MACHINE, dest="moves_machine", action="store_true",
                     help="allow --transmit onto a non-virtual interface: a machine on that bus WILL MOVE")
    bus.add_argument("--quiet", action="store_true", help="dry run: do not list the frames")
    return replay


def build_sinks(args: argparse.Namespace) -> list[Sink]:
    from excap.replay.can_sink import CanSink, parse_can_target

    sinks: list[Sink] = []
    if args.can:
        target = parse_can_target(args.can)
        if args.moves_machine and not args.transmit:
            raise ConfigError(f"{MOVES_THE_MACHINE} only makes sense with --transmit")
        mode = "commands" if args.commands else "control" if args.commands_from_control else "all"
        echo = None if args.transmit or args.quiet else sys.stdout
        sinks.append(CanSink(target, mode, transmit=args.transmit, allow_machine=args.moves_machine,
                             sources=args.can_source, echo=echo))
    elif args.transmit or args.commands or args.commands_from_control or args.can_source:
        raise ConfigError("--transmit, --commands, --commands-from-control and --can-source need --can")
    if args.ros:
        from excap.ros.env import rclpy_available

        if not rclpy_available():
            raise missing_extra("replay --ros", "ros")
        from excap.ros.replay_sink import RosSink

        sinks.append(RosSink(args.ros_prefix, args.ros_stamps, clock=args.clock, reliable=args.ros_reliable,
                             wait_subscriptions=args.wait_subscribers, wait_timeout_s=args.wait_subscribers_timeout))
    elif args.wait_subscribers:
        raise ConfigError("--wait-subscribers needs --ros")
    if not sinks:
        raise ConfigError("nothing to replay into: give --can INTERFACE:CHANNEL and/or --ros")
    return sinks


def _say(text: str) -> None:
    print(f"excap replay: {text}", file=sys.stderr, flush=True)


GAPS_REPORTED = 5


def _gap_reporter(start_t_ns: int) -> Any:
    reported = [0]

    def report(t_ns: int, gap_s: float) -> None:
        reported[0] += 1
        if reported[0] <= GAPS_REPORTED:
            _say(f"shortened {gap_s:.6g} s without samples to --max-gap before t = {(t_ns - start_t_ns) / 1e9:.6g} s"
                 + (" (further gaps are only counted)" if reported[0] == GAPS_REPORTED else ""))
    return report


@contextlib.contextmanager
def _keys(replay: Replay) -> Iterator[None]:
    """Space / 'p' toggles pause and 'q' stops, while stdin is a terminal."""
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            key = os.read(fd, 1)
            if key in (b" ", b"p", b"P"):
                _say("paused" if replay.toggle() else "resumed")
            elif key in (b"q", b"Q"):
                replay.stop()

    tty.setcbreak(fd)
    thread = threading.Thread(target=read, name="replay-keys", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(1)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _signals(replay: Replay) -> Iterator[None]:
    def stop(_signum: int, _frame: object) -> None:
        replay.stop()

    def toggle(_signum: int, _frame: object) -> None:
        # signal handlers run in the main thread, which only waits for the replay thread here
        _say("paused" if replay.toggle() else "resumed")

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, toggle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_in_thread(replay: Replay) -> ReplayStats:
    """Play on a worker thread so that signal handlers (main thread) never wait on the replay's locks."""
    result: list[ReplayStats] = []
    failure: list[BaseException] = []

    def play() -> None:
        try:
            result.append(replay.run())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=play, name="replay")
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    if failure:
        raise failure[0]
    return result[0]


def cmd_replay(args: argparse.Namespace) -> int:
    from excap.episode.reader import EpisodeReader
    from excap.replay.can_sink import SAFE_INTERFACES, CanSink
    from excap.replay.player import Replay, ReplayOptions

    sinks = build_sinks(args)
    options = ReplayOptions(rate=args.rate, start_s=args.start, end_s=args.end, loop=args.loop, streams=args.streams,
                            max_gap_s=args.max_gap)
    with EpisodeReader(args.episode) as reader:
        replay = Replay(reader, sinks, options)
        replay.scheduler.on_gap = _gap_reporter(reader.start_t_ns)
        for sink in sinks:
            if hasattr(sink, "controller"):
                sink.controller = replay
        for sink in sinks:
            if isinstance(sink, CanSink):
                where = sink.report.target
                if not sink.transmit:
                    _say(f"DRY RUN: listing the {sink.mode} frames that would go to {where}; nothing is sent "
                         "(add --transmit to send)")
                elif sink.target.interface in SAFE_INTERFACES:
                    _say(f"transmitting {sink.mode} frames onto {where}, {VIRTUAL_NOTE}")
                else:
                    _say(f"TRANSMITTING {sink.mode} frames onto {where}: a machine on this bus WILL MOVE")
        if args.wait_subscribers:
            _say(f"waiting up to {args.wait_subscribers_timeout:g} s for {args.wait_subscribers} subscriptions")
        listed = ", ".join(replay.paths) if len(replay.paths) <= 8 else f"{', '.join(replay.paths[:8])}, ..."
        _say(f"{len(replay.paths)} streams at rate {args.rate:g}: {listed}")
        if args.paused:
            replay.pause()
            _say("paused: space, 'p', SIGUSR1 or ~/resume to start")
        with _signals(replay), _keys(replay):
            stats = run_in_thread(replay)
    summary: dict[str, Any] = {"episode": str(args.episode), "rate": args.rate, **stats.as_dict()}
    for sink in sinks:
        if isinstance(sink, CanSink):
            summary["can"] = sink.report.as_dict()
        elif hasattr(sink, "published"):
            summary["ros"] = {"published": sum(sink.published.values()), "prefix": args.ros_prefix,
                              "clock": getattr(sink, "clock_published", 0)}
    print(json.dumps(summary, sort_keys=True), flush=True)
    return 0
