"""Smoothing of per-frame labels: runs of equal labels, a majority filter, merging of short runs."""

from __future__ import annotations

from typing import Any

import numpy as np


def runs(labels: np.ndarray) -> list[list[Any]]:
    """[label, first, end) runs of equal labels."""
    found: list[list[Any]] = []
    for i, label in enumerate(labels):
        if found and found[-1][0] == label:
            found[-1][2] = i + 1
        else:
            found.append([label, i, i + 1])
    return found


def majority(labels: np.ndarray, window: int) -> np.ndarray:
    """Each label replaced by the most common one within `window` frames around it (kept on a tie)."""
    if window <= 1 or len(labels) < window:
        return labels.copy()
    half = window // 2
    out = labels.copy()
    for i in range(len(labels)):
        values, counts = np.unique(labels[max(0, i - half): i + half + 1], return_counts=True)
        best = counts.max()
        out[i] = labels[i] if counts[list(values).index(labels[i])] == best else values[np.argmax(counts)]
    return out


def merge_short(labels: np.ndarray, min_frames: int) -> np.ndarray:
    """Relabel runs shorter than `min_frames` (shortest first) with their longer neighbour's label."""
    labels = labels.copy()
    while True:
        found = runs(labels)
        if len(found) <= 1:
            return labels
        short = [(int(r[2]) - int(r[1]), n) for n, r in enumerate(found) if int(r[2]) - int(r[1]) < min_frames]
        if not short:
            return labels
        _, n = min(short)
        _, first, end = found[n]
        before = found[n - 1] if n > 0 else None
        after = found[n + 1] if n + 1 < len(found) else None
        if before is not None and after is not None and before[0] == after[0]:
            target = before[0]
        else:
            sizes = [(int(r[2]) - int(r[1]), r[0]) for r in (before, after) if r is not None]
            target = max(sizes, key=lambda s: s[0])[1]
        labels[int(first):int(end)] = target
