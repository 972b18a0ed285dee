"""`excap render` (a review video: cameras side by side above sticks, commands, signals and events) and
`excap plot` (commands and CAN signals over time as a PNG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from excap.cli.arguments import positive
from excap.core.errors import ExcapError
from excap.core.extras import require_extra

if TYPE_CHECKING:
    from excap.review.render import WriterFactory


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


H264_SUFFIXES = (".mp4", ".m4v", ".mov")
NO_H264 = ("no H.264 encoder here (PyAV with libx264 comes with the exports extra: pip install 'excap[exports]'); "
           "writing MPEG-4 Part 2 (mp4v) instead, which browsers do not play")


def _note(text: str) -> None:
    print(f"excap render: {text}", file=sys.stderr)


def review_writer(out: Path) -> WriterFactory:
    """H.264 (browsers, VS Code, QuickTime) for .mp4 / .m4v / .mov where PyAV has libx264, else OpenCV's encoders
    (with one line saying so for an .mp4 / .mov)."""
    from excap.review.render import OpenCvWriter

    if out.suffix.lower() not in H264_SUFFIXES:
        return OpenCvWriter
    try:
        from excap.datasets.h264 import H264Writer, h264_available
    except ImportError:
        available = False
    else:
        available = h264_available()
    if available:
        return H264Writer
    _note(NO_H264)
    return OpenCvWriter


def cmd_render(args: argparse.Namespace) -> int:
    from excap.review.render import render_review_video

    if args.out.exists():
        raise ExcapError(f"{args.out}: already exists")
    cameras = args.cameras.split(",") if args.cameras else None
    frames = render_review_video(args.episode, args.out, fps=args.fps, cameras=cameras, progress=not args.no_progress,
                                 note=_note, writer=review_writer(args.out))
    print(f"{args.out}: {frames} frames")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    require_extra("plot", "review", "matplotlib")
    from excap.review.plot import plot_signals

    signals = args.signals.split(",") if args.signals else None
    print(plot_signals(args.episode, args.out, signals))
    return 0
