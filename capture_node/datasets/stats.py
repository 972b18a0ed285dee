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
