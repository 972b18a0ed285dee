"""`excap convert EPISODE --to mcap [--profile foxglove|ros2]` (an episode as one indexed MCAP file for Foxglove or
ROS 2) and `excap convert BAG.mcap --to episode --map MAPPING.yaml` (a ROS 2 bag as an episode); docs/mcap.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from excap.core.errors import ExcapError
from excap.core.extras import require_extra


def add_convert_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = commands.add_parser("convert", help="an episode as MCAP for Foxglove or ROS 2; a ROS 2 bag as an episode")
    parser.add_argument("source", type=Path, metavar="EPISODE|BAG.mcap")
    parser.add_argument("--to", required=True, choices=("mcap", "episode"),
                        help="mcap: the episode as one MCAP file; episode: the ROS 2 bag as an episode")
    parser.add_argument("--profile", choices=("foxglove", "ros2"), default="foxglove",
                        help="--to mcap: foxglove schemas, or ROS 2 messages (a rosbag2 MCAP file) "
                             "(default: %(default)s)")
    parser.add_argument("--map", type=Path, default=None, metavar="MAPPING.yaml",
                        help="--to episode: which bag topic is which stream (docs/mcap.md)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the file to write (default: the source's name with .mcap or .h5 beside it)")
    parser.add_argument("--layout", type=Path, default=None, metavar="LAYOUT.json",
                        help="--profile foxglove: also write a Foxglove layout of the episode's streams")
    parser.add_argument("--json", action="store_true", help="print the messages per topic as JSON")
    return parser


def cmd_convert(args: argparse.Namespace) -> int:
    require_extra("convert", "viewers")
    if args.to == "mcap":
        if args.map is not None:
            raise ExcapError("--map is for --to episode")
        if args.layout is not None and (args.profile != "foxglove" or args.layout.exists()):
            raise ExcapError(f"{args.layout}: already exists, not overwriting" if args.profile == "foxglove"
                             else "--layout is for --profile foxglove")
        out = args.out or args.source.with_name(f"{args.source.stem}.{args.profile}.mcap")
        if out.exists():
            raise ExcapError(f"{out}: already exists, not overwriting")
        if args.profile == "ros2":
            from excap.convert.mcap_ros2 import episode_to_ros2_mcap as convert
        else:
            from excap.convert.mcap_foxglove import episode_to_foxglove_mcap as convert
        started = time.perf_counter()
        report = convert(args.source, out)
        elapsed = time.perf_counter() - started
        if args.layout is not None:
            from excap.convert.foxglove_layout import write_layout

            write_layout(args.source, args.layout)
        if args.json:
            print(json.dumps({"path": str(out), "messages": report.messages, "duration_s": report.duration_s,
                              "seconds": round(elapsed, 3)}, indent=2))
        else:
            print(out)
            print(f"{report.summary()} in {elapsed:.1f} s", file=sys.stderr)
        return 0
    if args.map is None:
        raise ExcapError("--to episode needs --map MAPPING.yaml (which topic is which stream, docs/mcap.md)")
    from excap.convert.ros2_bag import bag_to_episode

    out = args.out or args.source.with_suffix(".h5")
    if out.exists():
        raise ExcapError(f"{out}: already exists, not overwriting")
    bag_report = bag_to_episode(args.source, args.map, out)
    if args.json:
        print(json.dumps({"path": str(out), "samples": bag_report.samples, "unmapped": bag_report.unmapped,
                          "missing": bag_report.missing, "skipped": bag_report.skipped}, indent=2))
    else:
        print(out)
        print(bag_report.summary(), file=sys.stderr)
    return 0
