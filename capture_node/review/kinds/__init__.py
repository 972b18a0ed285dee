"""The review of each machine kind: one module per profile `kind` (`excavator`, `wheel_loader`, ...), each with a
`REVIEW` (`excap.review.phase_model.KindReview`): its phase model and the signals reviews show.

Adding a kind means adding its module here; nothing else looks at the kind.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from functools import cache

from excap.core.errors import EpisodeError
from excap.review.phase_model import KindReview, ReviewSignal

_KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def known_kinds() -> tuple[str, ...]:
    """Every machine kind with a review module, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


@cache
def kind_review(kind: str) -> KindReview:
    """The review of machine kind `kind`; EpisodeError naming the known kinds if there is none."""
    if not _KIND_NAME.fullmatch(kind) or kind not in known_kinds():
        raise EpisodeError(f"no review of machine kind {kind[:64]!r} (known: {', '.join(known_kinds())})")
    review = importlib.import_module(f"{__name__}.{kind}").REVIEW
    if not isinstance(review, KindReview) or review.kind != kind:
        raise TypeError(f"{__name__}.{kind}.REVIEW must be the KindReview of kind {kind!r}")
    return review


def review_signals(kind: str) -> tuple[ReviewSignal, ...]:
    """The key signals of a kind; of every known kind for a kind without a review (those an episode has show)."""
    if kind in known_kinds():
        return kind_review(kind).signals
    every = {s.name: s for k in reversed(known_kinds()) for s in reversed(kind_review(k).signals)}
    return tuple(reversed(every.values()))


__all__ = ["kind_review", "known_kinds", "review_signals"]
