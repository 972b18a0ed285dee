"""Signal plots of episodes: machine-function commands and chosen CAN signals over time, events marked.

Without a choice, the key signals of the episode's machine kind (`excap.review.kinds`) that it has are plotted,
each panel labelled with the signal's name for people and its unit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from excap.episode.reader import EpisodeReader, Event, opened
from excap.review.kinds import review_signals
from excap.review.panel import HIGHLIGHT_KINDS

DPI = 100
WIDTH_IN = 12.0
COMMANDS_IN = 3.0  # height of the commands panel
SIGNAL_IN = 1.5  # height of each signal panel
MARGIN_IN = 0.5  # title and time axis label
LEFT_IN, RIGHT_IN, BOTTOM_IN, TOP_IN = 0.95, 0.15, 0.5, 0.45  # figure margins
CLUSTER_S = 0.25  # events closer than this share one label
MAX_CLUSTERS = 200  # labelled groups of events; later ones are not drawn
MAX_LINES_PER_CLUSTER = 20
LABEL_CHARS = 60
MAX_COMMANDS = 16  # command columns drawn


def plot_size_px(signal_count: int) -> tuple[int, int]:
    """(width, height) in pixels of a plot with `signal_count` signal panels."""
    return int(WIDTH_IN * DPI), round((MARGIN_IN + COMMANDS_IN + SIGNAL_IN * signal_count) * DPI)


def _event_label(kind: str, detail: dict) -> str:
    value = detail.get("phase") or detail.get("label") or detail.get("reason") or detail.get("stream") or ""
    return f"{kind[:LABEL_CHARS]} {str(value)[:LABEL_CHARS]}".strip()


def _seconds(t_ns: np.ndarray | int, start: int) -> np.ndarray | float:
    """Seconds from the episode start, in floating point (int64 differences could wrap around)."""
    return (np.asarray(t_ns, dtype=np.float64) - float(start)) / 1e9


def _mark_events(axes: Sequence[Any] | np.ndarray, events: Sequence[Event], start: int) -> None:
    """Vertical lines in every panel; labels in the commands panel, events closer than CLUSTER_S sharing one."""
    shown = [e for e in events if e.kind not in ("start", "stop")]
    clusters: list[list[Event]] = []
    for event in sorted(shown, key=lambda e: e.t_ns):
        if clusters and (event.t_ns - clusters[-1][-1].t_ns) / 1e9 < CLUSTER_S:
            clusters[-1].append(event)
        else:
            clusters.append([event])
    for cluster in clusters[:MAX_CLUSTERS]:
        for event in cluster[:MAX_LINES_PER_CLUSTER]:
            strong = event.kind in HIGHLIGHT_KINDS
            for ax in axes:
                ax.axvline(float(_seconds(event.t_ns, start)), color="tab:red" if strong else "0.45",
                           linewidth=1.4 if strong else 0.8, linestyle="-" if strong else "--")
        strong = any(e.kind in HIGHLIGHT_KINDS for e in cluster)
        label = " / ".join(_event_label(e.kind, e.detail) for e in cluster[:4])
        label = label[:LABEL_CHARS] + (f" (+{len(cluster) - 4})" if len(cluster) > 4 else "")
        axes[0].text(float(_seconds(cluster[-1].t_ns, start)), -1.05, label, rotation=90, fontsize=7, va="bottom",
                     ha="left", color="tab:red" if strong else "0.25",
                     bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 1})


def _fixed_margins(figure: Any, height_in: float) -> None:
    """Margins in inches (y labels left, title and legend above, time axis below): computing them with
    tight_layout would draw the whole figure once more."""
    figure.subplots_adjust(left=LEFT_IN / WIDTH_IN, right=1 - RIGHT_IN / WIDTH_IN, bottom=BOTTOM_IN / height_in,
                           top=1 - TOP_IN / height_in, hspace=0.12)


@dataclass(frozen=True)
class PlotSeries:
    name: str  # 'Message.Signal'
    label: str  # for people: the kind's name for it, else the message name
    unit: str


def plot_series(reader: EpisodeReader, signals: Sequence[str] | None = None) -> list[PlotSeries]:
    """The signal panels of a plot: the chosen signals (EpisodeError naming one the episode lacks), or the key
    signals of the episode's machine kind that it has."""
    known = {s.name: s for s in review_signals(str(reader.metadata.get("machine_kind", "")))}
    names = [s for s in known if reader.has_signal(s)] if signals is None else list(signals)
    series = []
    for name in names:
        stream, column = reader.signal(name)
        signal = known.get(name)
        series.append(PlotSeries(name, signal.label if signal else name.split(".")[0],
                                 stream.unit(column) or (signal.unit if signal else "")))
    return series


def signal_figure(episode: str | Path | EpisodeReader, signals: Sequence[str] | None = None) -> Any:
    """The plot as a matplotlib Figure (the caller closes it: `matplotlib.pyplot.close(figure)`): commands on top,
    one panel per signal of `plot_series` below, events as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with opened(episode) as reader:
        series = []
        for chosen in plot_series(reader, signals):
            stream, column = reader.signal(chosen.name)
            series.append((chosen, np.array(stream.t_ns), np.array(stream.column(column))))
        start = reader.start_t_ns
        control = reader.stream("control")
        names = control.names("commands")
        t_control = _seconds(control.t_ns, start)
        commands = np.array(control.column("commands"))
        events = reader.events()
        title = f"{reader.metadata.get('episode_id', reader.path.stem)}   {reader.metadata.get('task', '')}"[:120]

    width, height = plot_size_px(len(series))
    heights = [COMMANDS_IN] + [SIGNAL_IN] * len(series)
    figure, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(width / DPI, height / DPI), dpi=DPI,
                                gridspec_kw={"height_ratios": heights}, squeeze=False)
    axes = axes[:, 0]
    try:
        for k, name in enumerate(names[:MAX_COMMANDS]):
            axes[0].plot(t_control, commands[:, k], label=name[:LABEL_CHARS], linewidth=1.2)
        axes[0].set_ylim(-1.1, 1.1)
        axes[0].set_ylabel("command")
        if names:
            axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=min(len(names), 8), fontsize=8,
                           frameon=False)
        axes[0].set_title(title, fontsize=10, loc="right")
        for ax, (chosen, t_ns, values) in zip(axes[1:], series, strict=True):
            ax.plot(_seconds(t_ns, start), values, linewidth=1.0, color="tab:blue", label=chosen.name)
            label, unit = chosen.label[:LABEL_CHARS], chosen.unit[:12]
            ax.set_ylabel(f"{label}\n[{unit}]" if unit else label, fontsize=8)
            ax.text(0.005, 0.92, chosen.name, transform=ax.transAxes, fontsize=8, va="top",
                    bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"})
        _mark_events(axes, events, start)
        for ax in axes:
            ax.grid(True, alpha=0.3)
        axes[-1].set_xlabel("time from episode start [s]")
        _fixed_margins(figure, height / DPI)
    except BaseException:
        plt.close(figure)
        raise
    return figure


def plot_signals(episode: str | Path | EpisodeReader, out: Path, signals: Sequence[str] | None = None) -> Path:
    """Save the plot (`signal_figure`) as a PNG to `out`.

    Missing signals raise EpisodeError when named explicitly; the defaults are plotted when present."""
    import matplotlib.pyplot as plt

    out = Path(out)
    figure = signal_figure(episode, signals)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=DPI)
    finally:
        plt.close(figure)
    return out


def signal_names(episode: str | Path | EpisodeReader) -> list[str]:
    """Every decoded CAN signal of an episode as 'Message.Signal', for choosing what to plot."""
    with opened(episode) as reader:
        found = []
        for path in reader.paths("can_decoded"):
            message = path.rsplit("/", 1)[-1]
            columns = reader.stream(path).info.columns
            found += [f"{message}.{c}" for c in columns if c not in ("t_ns", "source_address")]
    return sorted(set(found))


__all__ = ["PlotSeries", "plot_series", "plot_signals", "plot_size_px", "signal_figure", "signal_names"]
