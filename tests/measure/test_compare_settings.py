"""`compare` never puts results measured with other runtime settings in one column."""

from __future__ import annotations

from tests.measure.test_compare import latency
from vitprune_export.measure.compare import build_comparison, comparison_dict


def _with(result, **settings):
    return {**result, "settings": settings}


def test_a_1_thread_baseline_and_a_2_thread_pruned_run_get_their_own_columns():
    results = [
        _with(latency("none", 100.0), threads=1, spinning=False),
        _with(latency("topk", 60.0), threads=2, spinning=False),  # most of its speed is the second thread
    ]
    comparison = build_comparison(results)
    labels = sorted(column.label for column in comparison.columns)
    assert labels == ["cpu-2core ort-cpu b1 threads=1", "cpu-2core ort-cpu b1 threads=2"]
    pruned = next(row for row in comparison.rows if row.method == "topk")
    assert all(cell.delta_pct is None for cell in pruned.cells.values())  # no baseline measured like it


def test_like_runs_share_a_column_and_only_differing_settings_are_named():
    results = [
        _with(latency("none", 100.0), threads=1, spinning=False, graph_optimization="all"),
        _with(latency("topk", 70.0), threads=1, spinning=False, graph_optimization="all"),
        _with(latency("none", 90.0), threads=1, spinning=True, graph_optimization="all"),
        _with(latency("topk", 60.0), threads=1, spinning=True, graph_optimization="all"),
    ]
    comparison = build_comparison(results)
    assert sorted(column.label for column in comparison.columns) == [
        "cpu-2core ort-cpu b1 spinning=false",
        "cpu-2core ort-cpu b1 spinning=true",
    ]
    pruned = next(row for row in comparison.rows if row.method == "topk")
    assert sorted(round(cell.delta_pct, 1) for cell in pruned.cells.values()) == [-33.3, -30.0]
    settings = [column["settings"] for column in comparison_dict(comparison)["columns"]]
    assert {"threads": 1, "spinning": True, "graph_optimization": "all"} in settings


def test_how_a_setting_was_found_does_not_split_a_column():
    """A tuned baseline and a pruned run given the same settings (bench's groups) are one column."""
    tuned = {"threads": 2, "spinning": False, "chosen_by": "tuned", "tuning_ms": {"2t nospin all": 30.1, "1t": 44}}
    results = [
        _with(latency("none", 100.0), **tuned),
        _with(
            latency("topk", 70.0), threads=2, spinning=False, chosen_by="the group's baseline (tuned or given there)"
        ),
    ]
    comparison = build_comparison(results)
    assert [column.label for column in comparison.columns] == ["cpu-2core ort-cpu b1"]
    pruned = next(row for row in comparison.rows if row.method == "topk")
    assert [round(cell.delta_pct, 1) for cell in pruned.cells.values()] == [-30.0]
