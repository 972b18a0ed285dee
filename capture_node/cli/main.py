"""The `excap` command line: builds the parser from the command modules (one per command group, each with an
`add_*_parser(commands)` and a `cmd_*(args)` returning the exit status) and runs the chosen command.

Command modules import what a command needs inside its `cmd_*` function, so that building the parser (and
`excap --help`) stays light. An `ExcapError` becomes one line `excap: error: ...` and exit status 2.
"""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from excap import __version__
from excap.cli.bench import add_bench_parser
from excap.cli.can_logs import add_can_parser
from excap.cli.check_config import add_check_config_parser
from excap.cli.convert import add_convert_parser
from excap.cli.joystick import add_joystick_parser
from excap.cli.record import add_record_parser
from excap.cli.recover import add_recover_parser
from excap.cli.review import add_plot_parser, add_render_parser
from excap.cli.validate import add_inspect_parser, add_validate_parser
from excap.core.errors import ExcapError

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {
    "record": "excap.cli.record:cmd_record",
    "inspect": "excap.cli.validate:cmd_inspect",
    "validate": "excap.cli.validate:cmd_validate",
    "recover": "excap.cli.recover:cmd_recover",
    "check-config": "excap.cli.check_config:cmd_check_config",
    "bench": "excap.cli.bench:cmd_bench",
    "render": "excap.cli.review:cmd_render",
    "plot": "excap.cli.review:cmd_plot",
    "joystick": "excap.cli.joystick:cmd_joystick",
    "node": "excap.cli.node:cmd_node",
    "replay": "excap.cli.replay:cmd_replay",
    "index": "excap.cli.datasets:cmd_index",
    "list": "excap.cli.datasets:cmd_list",
    "export": "excap.cli.datasets:cmd_export",
    "partner": "excap.cli.delivery:cmd_partner",
    "serve": "excap.cli.delivery:cmd_serve",
    "push": "excap.cli.delivery:cmd_push",
    "pull": "excap.cli.delivery:cmd_pull",
    "upload": "excap.cli.uplink:cmd_upload",
    "operator": "excap.people.admin:cmd_operator",
    "annotate": "excap.cli.annotate:cmd_annotate",
    "label": "excap.cli.label:cmd_label",
    "ledger": "excap.people.ledger:cmd_ledger",
    "station": "excap.cli.station:cmd_station",
    "station-user": "excap.cli.station_user:cmd_station_user",
    "can": "excap.cli.can_logs:cmd_can",
    "convert": "excap.cli.convert:cmd_convert",
    "fleet-report": "excap.cli.fleet_report:cmd_fleet_report",
}
"""Command name -> "module:function" running it (the module is imported only when that command runs)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="excap", description="Excavator and wheel-loader teleoperation "
                                     "demonstration capture into HDF5 episodes.")
    parser.add_argument("--version", action="version", version=f"excap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from excap.cli.annotate import add_annotate_parser
    from excap.cli.datasets import add_dataset_parsers
    from excap.cli.delivery import add_partner_parser, add_pull_parser, add_push_parser, add_serve_parser
    from excap.cli.fleet_report import add_fleet_report_parser
    from excap.cli.label import add_label_parser
    from excap.cli.node import add_node_parser
    from excap.cli.replay import add_replay_parser
    from excap.cli.station import add_station_parser
    from excap.cli.station_user import add_station_user_parser
    from excap.cli.uplink import add_upload_parser
    from excap.people.admin import add_operator_parser
    from excap.people.ledger import add_ledger_parser

    adders: list[Callable[[argparse._SubParsersAction], object]] = [
        add_record_parser, add_render_parser, add_plot_parser, add_joystick_parser, add_node_parser,
        add_replay_parser, add_dataset_parsers, add_partner_parser, add_serve_parser, add_push_parser,
        add_pull_parser, add_upload_parser, add_fleet_report_parser,
        add_operator_parser, add_annotate_parser, add_label_parser, add_ledger_parser,
        add_station_parser, add_station_user_parser, add_check_config_parser, add_bench_parser, add_inspect_parser,
        add_validate_parser, add_recover_parser, add_can_parser, add_convert_parser]
    for add in adders:  # in the order `excap --help` lists them
        add(commands)
    return parser


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status."""
    module, _, function = COMMANDS[args.command].partition(":")
    return int(getattr(importlib.import_module(module), function)(args))


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
        status = run_command(args)
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
