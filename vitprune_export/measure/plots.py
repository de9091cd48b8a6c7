"""Plots of a comparison (matplotlib, Agg): latency vs FLOPs per column and, when accuracies exist,
accuracy vs latency (the VPA paper's Fig. 5)."""

from __future__ import annotations

from pathlib import Path

from ..errors import VitPruneError
from ..files import atomic_output
from .compare import Comparison


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """PNG: latency vs GMACs per column (top row); accuracy vs latency per column when accuracies exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise VitPruneError(f"--plot writes a PNG; give a file name ending in .png, not {path.name!r}")
    columns = comparison.columns
    with_accuracy = bool(comparison.datasets)
    figure, axes = plt.subplots(
        2 if with_accuracy else 1,
        len(columns),
        figsize=(4.5 * len(columns), 4 * (2 if with_accuracy else 1)),
        squeeze=False,
    )
    for index, column in enumerate(columns):
        axis = axes[0][index]
        for row in comparison.rows:
            cell = row.cells.get(column)
            if cell is None or row.macs is None:
                continue
            is_baseline = row.method == comparison.baseline
            axis.scatter(
                row.macs / 1e9, cell.latency_ms, marker="*" if is_baseline else "o", s=120 if is_baseline else 40
            )
            axis.annotate(
                row.label, (row.macs / 1e9, cell.latency_ms), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        axis.set(title=column.label, xlabel="GMACs per image", ylabel="latency per query (ms)")
        axis.grid(alpha=0.3)
        if with_accuracy:
            axis = axes[1][index]
            dataset = comparison.datasets[0]
            for row in comparison.rows:
                cell = row.cells.get(column)
                if cell is None or dataset not in row.accuracy:
                    continue
                axis.scatter(cell.latency_ms, 100 * row.accuracy[dataset])
                axis.annotate(
                    row.label,
                    (cell.latency_ms, 100 * row.accuracy[dataset]),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
            axis.set(
                title=f"{column.label}: accuracy vs latency",
                xlabel="latency per query (ms)",
                ylabel=f"top-1 {dataset} (%)",
            )
            axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_output(path, suffix=".png", option="--plot") as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return path


__all__ = ["plot_comparison"]
