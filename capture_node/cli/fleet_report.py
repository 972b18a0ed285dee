"""`excap fleet-report DIR|s3://BUCKET/PREFIX`: validation and quality of every episode, one report per operator,
machine, site and machine kind (see excap.cluster.fleet_report), on the engine the flags choose."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from excap.cli.engine_options import add_engine_arguments, open_executor
from excap.core.extras import require_extra

COMMAND = "fleet-report"


def add_fleet_report_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser(COMMAND, help="validate and check the quality of every episode of a folder or "
                                 "s3:// prefix: one report per operator, machine, site and kind")
    parser.add_argument("source", metavar="DIR|s3://BUCKET/PREFIX")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                        help="also hours per group as a PNG (the review extra)")
    parser.add_argument("--endpoint-url", default=None, metavar="URL",
                        help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)")
    parser.add_argument("--region", default=None, help="default: from the AWS environment or config")
    parser.add_argument("--profile", default=None, help="AWS config profile")
    add_engine_arguments(parser)
    return parser


def cmd_fleet_report(args: argparse.Namespace) -> int:
    if args.source.startswith("s3://"):
        require_extra(COMMAND, "delivery", "boto3", "botocore")
    if args.plot is not None:
        require_extra(f"{COMMAND} --plot", "review", "matplotlib")
    from excap.cluster.fleet_report import fleet_report
    from excap.delivery.s3sync import SyncOptions

    access = SyncOptions(endpoint_url=args.endpoint_url, region=args.region, profile=args.profile, progress=False)
    options, executor = open_executor(args, COMMAND)
    with executor:
        report = fleet_report(args.source, executor, access, retries=options.retries)
    print(report.json_text() if args.json else report.table())
    if args.plot is not None:
        from excap.cluster.report_plot import plot_report

        plot_report(report, args.plot)
    for line in report.unchecked:
        print(f"excap: warning: not checked: {line}", file=sys.stderr)
    return 1 if report.total.invalid or report.unchecked else 0


__all__ = ["add_fleet_report_parser", "cmd_fleet_report"]
