"""`excap station`: run an operator station with a local web page, joystick bindings and a terminal status line.

The station's devices stay open while it runs; episodes are started and stopped from the page, its JSON API or
the joystick buttons bound in the machine profile. The page listens on loopback unless `--allow-remote`, which needs
HTTPS (`--tls-cert`, `--tls-key`) and a login of a station user (`excap station-user`). The terminal status line
shows always with `--headless` (no local browser: the page and API are still served, e.g. to a tablet), and
otherwise whenever no browser has asked for the status for a few seconds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from excap.core.errors import ConfigError
from excap.core.extras import require_extra
from excap.core.stop_request import StopRequest
from excap.drivers.can.lean_import import import_can_without_mf4

if TYPE_CHECKING:
    from excap.station.web.auth import RemoteAccess

DEFAULT_PORT = 8760


def add_station_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("station", help="run an operator station: live page, joystick bindings, episodes")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="STATION.yaml", help="the station's devices")
    source.add_argument("--sim", action="store_true",
                        help="a simulated station: the machine of --profile's kind, its scripted operator and cameras")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="episode folder (default: the config's out_dir; --sim: episodes)")
    parser.add_argument("--host", default="127.0.0.1", help="address of the page (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="port of the page, 0: any free port (default: %(default)s)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="serve the page to the network: needs --tls-cert and --tls-key, and a login")
    parser.add_argument("--tls-cert", type=Path, default=None, metavar="FILE", help="TLS certificate chain (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, metavar="FILE", help="its private key (PEM)")
    parser.add_argument("--users", type=Path, default=None, metavar="FILE",
                        help="station users allowed to log in (default: OUT/.excap/station_users.yaml)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME[:PORT]",
                        help="a further name browsers reach the station by (repeat for several)")
    parser.add_argument("--session-idle", type=float, default=15.0, metavar="MIN",
                        help="a login ends after this many minutes without a request (default: %(default)s)")
    parser.add_argument("--session-max", type=float, default=12.0, metavar="H",
                        help="a login ends this many hours after it began (default: %(default)s)")
    parser.add_argument("--headless", action="store_true",
                        help="no local browser: the terminal status line always (the page and API are still served)")
    parser.add_argument("--disk-warn-gb", type=float, default=5.0, metavar="GB",
                        help="warn below this much free disk space (default: %(default)s)")
    parser.add_argument("--stale-after", type=float, default=1.0, metavar="S",
                        help="a stream silent this long is stale (default: %(default)s)")
    parser.add_argument("--foxglove", type=int, default=None, metavar="PORT",
                        help="also serve the live streams to Foxglove (WebSocket protocol) on PORT (0: any free port); "
                             "needs the viewers extra")
    parser.add_argument("--foxglove-host", default="127.0.0.1", metavar="ADDRESS",
                        help="address of the Foxglove server (default: %(default)s, this machine only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--profile", default=None, help="(--sim) machine profile name or YAML file")
    parser.add_argument("--pattern", default=None, help="(--sim) control pattern of the profile")
    parser.add_argument("--certification-policy", choices=("refuse", "mark", "mark_uncertified"), default=None,
                        help="refuse an operator the registry does not certify, or mark the episode uncertified "
                             "(default: the station config's; --sim: mark)")
    return parser


def check_foxglove(port: int | None, command: str) -> None:
    """`--foxglove PORT`: a port number, and the viewers extra installed (one line naming it otherwise)."""
    if port is None:
        return
    if not 0 <= port <= 65535:
        raise ConfigError(f"--foxglove: port must be 0..65535, not {port}")
    require_extra(command, "viewers", "foxglove")


def remote_access(args: argparse.Namespace, out_dir: Path) -> RemoteAccess | None:
    """TLS files, users and session limits of the command line; None without --allow-remote (ConfigError if
    remote access lacks TLS)."""
    from excap.station.users import users_path
    from excap.station.web.app import REMOTE_NEEDS
    from excap.station.web.auth import AuthSettings, RemoteAccess

    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if not args.allow_remote:
        if args.tls_cert or args.users or args.allowed_host:
            raise ConfigError("--tls-cert, --tls-key, --users and --allowed-host go with --allow-remote")
        return None
    if args.tls_cert is None:
        raise ConfigError(REMOTE_NEEDS)
    if not (args.session_idle > 0 and args.session_max > 0):
        raise ConfigError("--session-idle and --session-max must be positive")
    auth = AuthSettings(users_path(out_dir, args.users), idle_s=args.session_idle * 60,
                        max_age_s=args.session_max * 3600)
    return RemoteAccess(args.tls_cert, args.tls_key, auth, tuple(args.allowed_host))


def cmd_station(args: argparse.Namespace) -> int:
    # Ctrl-C and SIGTERM stop the station (a running episode finalized) from the first moment, also while the
    # libraries below load.
    stop = StopRequest().install().requested
    import_can_without_mf4()
    from excap.record.recovery import report_recovery
    from excap.station.app import RunningStation, StatusLine
    from excap.station.config import load_station_config
    from excap.station.status import StatusThresholds
    from excap.station.web.app import check_host

    if args.sim:
        from excap.drivers.machine.profiles import DEFAULT_PROFILE
        from excap.station.sim import SimSessionOptions, simulated_station

        config = simulated_station(SimSessionOptions(out_dir=args.out or Path("episodes"), seed=args.seed,
                                                     profile=args.profile or DEFAULT_PROFILE, pattern=args.pattern,
                                                     certification_policy=args.certification_policy or "mark"))
    else:
        config = load_station_config(args.config)
        if args.out is not None:
            config.out_dir = args.out
        if args.certification_policy:
            config.session["certification_policy"] = args.certification_policy
    remote = remote_access(args, config.out_dir)
    check_host(args.host, args.allow_remote, remote)
    if args.disk_warn_gb < 0 or args.stale_after <= 0:
        raise ConfigError("--disk-warn-gb must not be negative and --stale-after must be positive")
    check_foxglove(args.foxglove, "station --foxglove")
    report_recovery(config.out_dir)
    thresholds = StatusThresholds(stale_after_s=args.stale_after, disk_warn_bytes=args.disk_warn_gb * 1e9)
    running = RunningStation.start(config, thresholds, seed=args.seed, host=args.host, port=args.port,
                                   allow_remote=args.allow_remote, remote=remote)
    assert running.server is not None
    print(f"station page{' (headless)' if args.headless else ''}: {running.server.url}  (Ctrl-C to stop)",
          file=sys.stderr, flush=True)
    view = None
    if args.foxglove is not None:
        from excap.station.live_view import LiveView

        try:
            view = LiveView(running.runtime, running.station.monitor, args.foxglove, args.foxglove_host).start()
        except BaseException:
            running.stop()
            raise
        print(f"foxglove live view: {view.url}", file=sys.stderr, flush=True)
    line = StatusLine(running.station, sys.stderr, always=args.headless).start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        line.stop()
        if view is not None:
            view.stop()
        path = running.stop()
    for message in running.station.controller.message_list(limit=5):
        print(f"{message['source']}: {message['text']}", file=sys.stderr)
    if path is not None:
        print(path)
    return 0
