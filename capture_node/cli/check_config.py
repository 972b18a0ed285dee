"""`excap check-config STATION.yaml...`: every mistake in station config files, or (`--json-schema`) the JSON Schema
of station configs or machine profiles for editors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from excap.core.errors import ConfigError


def add_check_config_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    check = commands.add_parser("check-config", help="report every mistake in station config files")
    check.add_argument("configs", type=Path, nargs="*", metavar="STATION.yaml")
    check.add_argument("--json-schema", choices=("station", "profile"), default=None,
                       help="print the JSON Schema of station configs or machine profiles (for editors) instead")
    return check


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
