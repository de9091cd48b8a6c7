"""Latency statistics of timed queries: the one implementation ``vitprune profile`` and a bundle share.

Standard library and numpy. Reported: median, mean, p90, p99, std (population),
min and max of the samples in ms (VPA paper §4.1 reports the median of one
query divided by the batch size).
"""

from __future__ import annotations

STATS = ("median", "mean", "p90", "p99", "std", "min", "max")


def latency_stats(samples_ms) -> dict:
    """Median, mean, p90, p99, std (population), min and max of ``samples_ms``; a ValueError when empty."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no timed iterations")
    return {
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def images_per_second(batch: int, median_ms: float) -> float:
    """Throughput of one query of ``batch`` images that takes ``median_ms``."""
    return batch * 1000.0 / median_ms if median_ms > 0 else 0.0
