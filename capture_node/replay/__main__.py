"""`python -m capture_node.replay EPISODE ...`: the same as `excap replay EPISODE ...`."""

import argparse
import sys
from collections.abc import Sequence

from capture_node.errors import ExcapError
from capture_node.replay.cli import add_replay_parser, cmd_replay


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="excap")
    add_replay_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", *(sys.argv[1:] if argv is None else argv)])
    try:
        return cmd_replay(args)
    except ExcapError as exc:
        print(f"excap: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
