"""The fleet report as a PNG (matplotlib, the `review` extra): hours per operator, machine, site and kind, with
the invalid episodes of each group marked."""

from __future__ import annotations

from pathlib import Path

from excap.cluster.fleet_report import FleetReport


def plot_report(report: FleetReport, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(report.groups.items())
    figure, axes = plt.subplots(len(groups), 1, figsize=(9, 2.4 * len(groups)), squeeze=False)
    for axis, (group, members) in zip(axes[:, 0], groups, strict=True):
        keys = sorted(members)
        hours = [members[key].hours for key in keys]
        invalid = [members[key].invalid for key in keys]
        bars = axis.barh(keys, hours, color="tab:blue")
        for bar, count in zip(bars, invalid, strict=True):
            if count:
                axis.annotate(f"{count} invalid", (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                              xytext=(4, 0), textcoords="offset points", va="center", color="tab:red")
        axis.set_title(f"hours per {group}", loc="left", fontsize=10)
        axis.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("hours")
    figure.suptitle(f"{report.source}: {report.total.episodes} episodes, {report.total.hours:.2f} h, "
                    f"{report.total.invalid} invalid", fontsize=10)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


__all__ = ["plot_report"]
