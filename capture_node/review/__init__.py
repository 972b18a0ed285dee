"""Reviewing episodes: work-phase proposals for annotation (by each machine kind's phase model: dig, swing, dump,
... of an excavator; load, haul, dump, return of a wheel loader), signal plots, and review videos of the cameras
above a panel of sticks, commands, the kind's key machine signals and events (`excap.review.kinds`).

Public names are imported on first use (`excap.core.lazy_exports`): importing the package, or any
module in it, imports nothing else.
"""

from typing import TYPE_CHECKING

from excap.core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from excap.review.phases import Phase, propose_phases
    from excap.review.plot import plot_signals
    from excap.review.render import render_review_video

__all__ = ["Phase", "plot_signals", "propose_phases", "render_review_video"]

__getattr__, __dir__ = lazy_exports(__name__, __all__, {
    "excap.review.phases": ["Phase", "propose_phases"],
    "excap.review.plot": ["plot_signals"],
    "excap.review.render": ["render_review_video"],
})
