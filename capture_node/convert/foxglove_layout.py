"""The Foxglove layout for excap MCAP files (profile foxglove), built with the Foxglove SDK's layout types.

Left: the cameras above the 3D view of the machine's links (`/tf`, following `base_link`). Right: tabs of plots:
sticks (each joystick's axes), commands (`/control`, one series per machine function), CAN signals (the machine
kind's state signals, excap.schemas.machine_kinds), and the events log (`/events`). `episode_layout` builds the
layout of an episode's streams (`excap convert EPISODE --to mcap --layout OUT.json`); `schemas/foxglove/` holds those
of the two simulated machines. Foxglove imports one with "Import from file..." in its layout menu.
"""

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import foxglove.layouts as fl

from excap.episode.reader import EpisodeReader
from excap.schemas.machine_kinds import MACHINE_KINDS


def _plot(title: str, paths: Sequence[tuple[str, str]]) -> fl.PlotPanel:
    return fl.PlotPanel(title=title, config=fl.PlotConfig(
        paths=[fl.PlotSeries(value=path, label=label, timestamp_method="receiveTime") for path, label in paths],
        show_legend=True, legend_display="floating"))


def signal_path(signal: str, channel: str = "can0") -> tuple[str, str]:
    """A decoded CAN signal `Message.Signal` as a plot path of its topic (Foxglove quotes no plain names)."""
    message, _, name = signal.partition(".")
    return f"/can/{channel}/decoded/{message}.{name}", signal


def excap_layout(kind: str, cameras: Sequence[str], joysticks: Mapping[str, Sequence[str]],
                 functions: Sequence[str], can_channel: str = "can0") -> fl.Layout:
    """The layout of an episode of machine `kind` with these cameras, joysticks (name -> axis names) and functions."""
    images = [fl.SplitItem(content=fl.ImagePanel(title=name, config=fl.ImageConfig(
        image_mode=fl.ImageModeConfig(image_topic=f"/cameras/{name}")))) for name in cameras]
    scene = fl.ThreeDeePanel(title="machine", config=fl.ThreeDeeConfig(follow_tf="base_link"))
    cameras_row = [fl.SplitItem(content=fl.SplitContainer(direction="row", items=images))] if images else []
    left = fl.SplitContainer(direction="column", items=[*cameras_row, fl.SplitItem(content=scene)])
    sticks = [fl.TabItem(title=f"sticks {name}", content=_plot(
        f"joystick {name}", [(f"/joystick/{name}.axes.{axis}", axis) for axis in axes]))
        for name, axes in joysticks.items()]
    commands = fl.TabItem(title="commands", content=_plot(
        "commands", [(f"/control.{function}", function) for function in functions]))
    entry = MACHINE_KINDS.get(kind)
    signals = [signal_path(s, can_channel) for s in entry.state_signals] if entry is not None else []
    can_plots = fl.TabItem(title="CAN signals", content=_plot("CAN signals", signals))
    plots = fl.TabContainer(tabs=[*sticks, commands, can_plots])
    events = fl.LogPanel(title="events", config=fl.LogConfig(topic_to_render="/events"))
    right = fl.SplitContainer(direction="column", items=[fl.SplitItem(proportion=3, content=plots),
                                                         fl.SplitItem(proportion=1, content=events)])
    return fl.Layout(content=fl.SplitContainer(direction="row", items=[
        fl.SplitItem(proportion=1, content=left), fl.SplitItem(proportion=1, content=right)]))


def episode_layout(reader: EpisodeReader) -> fl.Layout:
    """The layout of an episode's cameras, joysticks, machine functions and machine kind."""
    cameras = [path.split("/", 1)[1] for path in reader.paths("camera")]
    joysticks = {path.split("/", 1)[1]: reader.stream(path).names("axes") for path in reader.paths("joystick")}
    channels = [path.split("/", 1)[1] for path in reader.paths("can")]
    return excap_layout(str(reader.metadata.get("machine_kind", "")), cameras, joysticks, reader.command_names,
                        channels[0] if channels else "can0")


def write_layout(episode: Path, out: Path) -> None:
    """Write the Foxglove layout of `episode` to `out` (JSON)."""
    with EpisodeReader(episode) as reader:
        text = episode_layout(reader).to_json()
    out.write_text(json.dumps(json.loads(text), indent=2) + "\n", encoding="utf-8")


__all__ = ["episode_layout", "excap_layout", "write_layout"]
