"""Feature statistics in LeRobot's layout: min, max, mean, std, count and quantiles q01 q10 q50 q90 q99.

Vectors get one value per entry (shape (D,)); images one per channel, shaped (3, 1, 1), on pixel values
scaled to [0, 1]. Per-episode statistics combine into dataset statistics with `aggregate` (count-weighted
means and variances; quantiles as count-weighted means of the episodes' quantiles, an approximation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


def vector_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of an (N,) or (N, D) array, per entry."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim == 1:
        data = data[:, None]
    stats = {"min": data.min(axis=0), "max": data.max(axis=0), "mean": data.mean(axis=0), "std": data.std(axis=0),
             "count": np.array([data.shape[0]])}
    for key, value in zip(QUANTILE_KEYS, np.quantile(data, QUANTILES, axis=0), strict=True):
        stats[key] = value
    return stats


def image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (S, H, W, 3) uint8 images, scaled to [0, 1], shaped (3, 1, 1)."""
    pixels = np.asarray(images, dtype=np.float64).reshape(-1, images.shape[-1]) / 255.0
    stats = vector_stats(pixels)
    stats["count"] = np.array([images.shape[0]])
    return {k: (v if k == "count" else v.reshape(-1, 1, 1)) for k, v in stats.items()}


def aggregate(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    counts = np.array([float(p["count"][0]) for p in parts])
    weights = counts / counts.sum()
    means = np.stack([p["mean"] for p in parts])
    mean = np.tensordot(weights, means, axes=1)
    second = np.tensordot(weights, np.stack([p["std"] ** 2 + p["mean"] ** 2 for p in parts]), axes=1)
    out = {"min": np.min(np.stack([p["min"] for p in parts]), axis=0),
           "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
           "mean": mean, "std": np.sqrt(np.maximum(second - mean ** 2, 0.0)),
           "count": np.array([int(counts.sum())])}
    for key in QUANTILE_KEYS:
        out[key] = np.tensordot(weights, np.stack([p[key] for p in parts]), axes=1)
    return out


def to_json(stats: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: np.asarray(v).tolist() for k, v in stats.items()}


def from_json(stats: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in stats.items()}


class ImageStatsAccumulator:
    """`image_stats` of a stream of images, kept as one 256-bin histogram per channel: the memory does not grow
    with the number of images, and min, max, quantiles (numpy's linear method) are exact; mean and std are
    computed from the histogram."""

    def __init__(self, channels: int = 3) -> None:
        self.histograms = np.zeros((channels, 256), dtype=np.int64)
        self.images = 0

    def add(self, image: np.ndarray, channel_order: tuple[int, ...] = (0, 1, 2)) -> None:
        """Count an (H, W, C) uint8 image; `channel_order` picks its channels in output order (e.g. (2, 1, 0) for
        a BGR image whose statistics are reported as RGB)."""
        import cv2

        for out, channel in enumerate(channel_order):
            counts = cv2.calcHist([image], [channel], None, [256], [0, 256])
            self.histograms[out] += np.rint(counts).astype(np.int64).ravel()
        self.images += 1

    def stats(self) -> dict[str, np.ndarray]:
        if not self.images:
            raise ValueError("no images were added")
        values = np.arange(256, dtype=np.float64) / 255.0
        counts = self.histograms
        total = counts.sum(axis=1)
        used = counts > 0
        mean = (counts * values).sum(axis=1) / total
        std = np.sqrt((counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / total)
        stats = {"min": np.array([values[np.flatnonzero(u)[0]] for u in used]),
                 "max": np.array([values[np.flatnonzero(u)[-1]] for u in used]),
                 "mean": mean, "std": std}
        cumulative = np.cumsum(counts, axis=1)
        for key, q in zip(QUANTILE_KEYS, QUANTILES, strict=True):
            position = (total - 1) * q
            below = np.floor(position).astype(np.int64)
            fraction = position - below
            low = np.array([values[np.searchsorted(c, b, side="right")] for c, b in zip(cumulative, below,
                                                                                          strict=True)])
            high = np.array([values[np.searchsorted(c, min(b + 1, t - 1), side="right")]
                             for c, b, t in zip(cumulative, below, total, strict=True)])
            stats[key] = low + fraction * (high - low)
        shaped = {k: v.reshape(-1, 1, 1) for k, v in stats.items()}
        shaped["count"] = np.array([self.images])
        return shaped
