"""`excap inspect EPISODE` (per-stream counts, rates, gaps and drops) and `excap validate EPISODE...` (the schema in
schemas/, plus quality warnings that do not make a file invalid)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_inspect_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    inspect = commands.add_parser("inspect", help="per-stream counts, rates, gaps and drops of an episode")
    inspect.add_argument("episode", type=Path)
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    return inspect


def add_validate_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    validate = commands.add_parser("validate", help="check episodes against the schema in schemas/")
    validate.add_argument("episodes", type=Path, nargs="+")
    return validate


def cmd_inspect(args: argparse.Namespace) -> int:
    from excap.episode.summary import summarize, summary_json, summary_text

    summary = summarize(args.episode)
    print(summary_json(summary) if args.json else summary_text(summary))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from excap.episode.quality import file_warnings
    from excap.episode.validation import validate_episode

    failed = 0
    for path in args.episodes:
        problems = validate_episode(path)
        if problems:
            failed += 1
            for problem in problems:
                print(problem)
        else:
            print(f"{path}: valid")
        for warning in file_warnings(path):  # quality, not schema: they do not make the file invalid
            print(f"{path}: WARNING: {warning}")
    return 1 if failed else 0
