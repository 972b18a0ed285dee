"""`excap label EPISODE --outcome success|failure [--note TEXT] [--by NAME]`: set or correct an episode's outcome
after recording, as a `label` event (see `excap.episode.labels`)."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path


def add_label_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("label", help="set or correct an episode's outcome (success or failure)")
    parser.add_argument("episode", type=Path, help="episode file")
    parser.add_argument("--outcome", required=True, metavar="success|failure", help="the episode's outcome")
    parser.add_argument("--note", default="", help="why (free text)")
    parser.add_argument("--by", default=None, metavar="NAME", help="who labels it (default: the OS user)")
    return parser


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def cmd_label(args: argparse.Namespace) -> int:
    from excap.episode.labels import check_outcome, label_episode

    check_outcome(args.outcome)  # before touching the file
    label = label_episode(args.episode, args.outcome, note=args.note, by=args.by or os_user(), source="cli")
    was = f" (was {label.previous})" if label.previous else ""
    print(f"{args.episode}: outcome {label.outcome}{was}, labelled by {label.by or '?'} at {label.at}")
    return 0
