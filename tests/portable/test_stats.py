"""``portable.stats``: the latency statistics every result carries."""

from __future__ import annotations

import pytest

from vitprune_export.portable.stats import STATS, images_per_second, latency_stats


def test_statistics_of_one_to_a_hundred():
    stats = latency_stats(range(1, 101))
    assert tuple(stats) == STATS
    assert stats["median"] == 50.5
    assert stats["mean"] == 50.5
    assert stats["p90"] == pytest.approx(90.1)  # linear interpolation between the 90th and 91st samples
    assert stats["p99"] == pytest.approx(99.01)
    assert stats["std"] == pytest.approx(((100**2 - 1) / 12) ** 0.5)  # population std of 1..n
    assert (stats["min"], stats["max"]) == (1.0, 100.0)


def test_no_samples_is_an_error_not_a_nan():
    with pytest.raises(ValueError, match="no timed iterations"):
        latency_stats([])


def test_images_per_second_counts_the_batch():
    assert images_per_second(8, 4.0) == 2000.0
    assert images_per_second(1, 0.0) == 0.0
