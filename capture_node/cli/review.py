"""`excap render` (a review video: cameras side by side above sticks, commands, signals and events) and
`excap plot` (commands and CAN signals over time as a PNG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from excap.cli.arguments import positive
from excap.core.errors import ExcapError
from excap.core.extras import require_extra


def add_render_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    render = commands.add_parser("render", help="review video: cameras side by side with sticks, commands, "
                                 "machine signals and events")
    render.add_argument("episode", type=Path)
    render.add_argument("--out", type=Path, required=True, metavar="VIDEO.mp4")
    render.add_argument("--fps", type=positive(float), default=None, help="default: the first camera's rate")
    render.add_argument("--cameras", default=None, metavar="A,B", help="cameras to show (default: all)")
    render.add_argument("--no-progress", action="store_true")
    return render


def add_plot_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    plot = commands.add_parser("plot", help="commands and CAN signals over time, events marked (PNG)")
    plot.add_argument("episode", type=Path)
    plot.add_argument("--out", type=Path, required=True, metavar="SIGNALS.png")
    plot.add_argument("--signals", default=None, metavar="Msg.Sig,...", help="CAN signals (default: key ones)")
    return plot


def cmd_render(args: argparse.Namespace) -> int:
    from excap.review.render import render_review_video

    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists")
    cameras = args.cameras.split(",") if args.cameras else None
    frames = render_review_video(args.episode, args.out, fps=args.fps, cameras=cameras, progress=not args.no_progress,
                                 note=lambda text: print(f"excap render: {text}", file=sys.stderr))
    print(f"{args.out}: {frames} frames")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    require_extra("plot", "review", "matplotlib")
    from excap.review.plot import plot_signals

    signals = args.signals.split(",") if args.signals else None
    print(plot_signals(args.episode, args.out, signals))
    return 0
