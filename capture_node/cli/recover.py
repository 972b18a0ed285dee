"""`excap recover DIR`: rebuild episodes from the journals a crashed recording left behind
(`excap.record.recovery.report_recovery` does
the same before a command records into a folder)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from excap.core.errors import ExcapError


def add_recover_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    recover = commands.add_parser("recover", help="rebuild episodes from journals left by a crash")
    recover.add_argument("dir", type=Path)
    return recover


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
