"""`excap can import LOG` (a CAN log of any format python-can reads, as an episode) and `excap can export EPISODE`
(an episode's raw CAN frames as a log, format by suffix)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from excap.core.errors import ExcapError
from excap.core.extras import require_extra


def add_can_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    can_parser = commands.add_parser("can", help="import CAN logs as episodes, export episodes' CAN frames as logs")
    can_actions = can_parser.add_subparsers(dest="can_command", required=True, metavar="ACTION")
    can_import = can_actions.add_parser("import", help="write a CAN log (.log .asc .blf .trc .csv .mf4) as an episode")
    can_import.add_argument("log", type=Path)
    can_import.add_argument("--out", type=Path, required=True, metavar="EPISODE.h5")
    can_import.add_argument("--dbc", type=Path, default=None, help="decode the frames with this DBC")
    can_import.add_argument("--channel", default="can0", metavar="NAME",
                            help="stream name of a single-channel log (default: %(default)s)")
    can_import.add_argument("--profile", default=None, metavar="PROFILE",
                            help="the machine's profile (name or YAML file): its kind, model and functions are the "
                                 "episode's, and without --dbc its DBCs decode the frames (default: the profile of "
                                 "--set machine_kind=KIND, else excavator_20t; kind and functions only)")
    can_import.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                            help="episode metadata, e.g. site=quarry-3 (repeatable)")
    can_export = can_actions.add_parser("export", help="write an episode's raw CAN frames to a log (format by suffix)")
    can_export.add_argument("episode", type=Path)
    can_export.add_argument("--out", type=Path, required=True, metavar="LOG")
    can_export.add_argument("--channel", default=None, metavar="NAME", help="only this CAN channel (default: all)")
    return can_parser


def cmd_can(args: argparse.Namespace) -> int:
    log = args.out if args.can_command == "export" else args.log
    if ".mf4" in (suffix.lower() for suffix in log.suffixes):
        require_extra(f"can {args.can_command}", "mf4", "asammdf")  # python-can reads and writes MF4 with it
    from excap.convert.can_log_export import export_can_log
    from excap.convert.can_logs import import_can_log_report

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
    report = import_can_log_report(args.log, args.out, args.dbc, args.channel, args.profile,
                                   **{key: value for key, _, value in pairs})
    print(report.path)
    print(report.summary(), file=sys.stderr)
    return 0
