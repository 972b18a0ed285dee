"""`excap station`: run an operator station with a local web page, joystick bindings and a terminal status line.

The station's devices stay open while it runs; episodes are started and stopped from the page, its JSON API or
the joystick buttons bound in the machine profile. The page listens on loopback unless `--allow-remote`. The
terminal status line shows with `--headless` (no page at all), and otherwise whenever no browser has asked for
the status for a few seconds.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from excap.core.errors import ConfigError

DEFAULT_PORT = 8760


def add_station_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("station", help="run an operator station: live page, joystick bindings, episodes")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="STATION.yaml", help="the station's devices")
    source.add_argument("--sim", action="store_true", help="a simulated excavator station (sim cameras side, top)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="episode folder (default: the config's out_dir; --sim: episodes)")
    parser.add_argument("--host", default="127.0.0.1", help="address of the page (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port of the page, 0: any free port (default: %(default)s)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow a non-loopback --host (anyone reaching it can start and stop recordings)")
    parser.add_argument("--headless", action="store_true", help="no page: joystick bindings and the status line only")
    parser.add_argument("--disk-warn-gb", type=float, default=5.0, metavar="GB",
                        help="warn below this much free disk space (default: %(default)s)")
    parser.add_argument("--stale-after", type=float, default=1.0, metavar="S",
                        help="a stream silent this long is stale (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--certification-policy", choices=("refuse", "mark", "mark_uncertified"), default=None,
                        help="refuse an operator the registry does not certify, or mark the episode uncertified "
                             "(default: the station config's; --sim: mark)")
    return parser


def cmd_station(args: argparse.Namespace) -> int:
    from excap.record.recovery import report_recovery
    from excap.station.app import RunningStation, StatusLine
    from excap.station.config import load_station_config
    from excap.station.status import StatusThresholds
    from excap.station.web.app import check_host

    if not args.headless:
        check_host(args.host, args.allow_remote)
    if args.sim:
        from excap.station.sim import SimSessionOptions, simulated_station

        config = simulated_station(SimSessionOptions(out_dir=args.out or Path("episodes"), seed=args.seed,
                                                     certification_policy=args.certification_policy or "mark"))
    else:
        config = load_station_config(args.config)
        if args.out is not None:
            config.out_dir = args.out
        if args.certification_policy:
            config.session["certification_policy"] = args.certification_policy
    if args.disk_warn_gb < 0 or args.stale_after <= 0:
        raise ConfigError("--disk-warn-gb must not be negative and --stale-after must be positive")
    report_recovery(config.out_dir)
    stop = threading.Event()

    def handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    thresholds = StatusThresholds(stale_after_s=args.stale_after, disk_warn_bytes=args.disk_warn_gb * 1e9)
    running = RunningStation.start(config, thresholds, seed=args.seed, host=None if args.headless else args.host,
                                   port=args.port, allow_remote=args.allow_remote)
    if running.server is not None:
        print(f"station page: {running.server.url}  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    else:
        print("station running headless (Ctrl-C to stop)", file=sys.stderr, flush=True)
    line = StatusLine(running.station, sys.stderr, always=args.headless).start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        line.stop()
        path = running.stop()
    for message in running.station.controller.message_list(limit=5):
        print(f"{message['source']}: {message['text']}", file=sys.stderr)
    if path is not None:
        print(path)
    return 0
