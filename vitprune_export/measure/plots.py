"""Plots of a comparison (matplotlib, Agg): latency vs MACs per column and, when accuracies exist,
accuracy vs latency (the VPA paper's Fig. 5).

Made to be read at a glance: one colour and marker per method in every panel, one legend for the figure,
axes that start at zero with their units, error bars of ±1 standard deviation of the measured latency, and
no text on the points (the legend names them), so nothing collides.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import VitPruneError
from ..files import atomic_output
from .compare import Cell, Comparison

MARKERS = "osD^vP<>Xhp"


def _std_of(source: str) -> float | None:
    """The measured standard deviation (ms) of a result file, None when unknown."""
    try:
        return float(json.loads(Path(source).read_text())["latency_ms"]["std"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def latency_spread(cell: Cell) -> float:
    """±1 standard deviation of the cell's latency (ms), from the result it was read from; 0 when unknown."""
    spread = getattr(cell, "std_ms", None)
    if spread is None and cell.source:
        spread = _std_of(cell.source)
    return float(spread or 0.0)


def method_styles(comparison: Comparison) -> dict[str, dict]:
    """One colour and marker per method, the same in every panel; the baseline is a black star."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"].colors + matplotlib.colormaps["Dark2"].colors
    methods = sorted({row.method for row in comparison.rows} - {comparison.baseline})
    styles = {
        method: {"color": palette[index % len(palette)], "marker": MARKERS[index % len(MARKERS)]}
        for index, method in enumerate(methods)
    }
    styles[comparison.baseline] = {"color": "black", "marker": "*"}
    return styles


def draw_comparison(comparison: Comparison):
    """The figure: latency vs GMACs per column (top row); accuracy vs latency per column when accuracies exist."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = comparison.columns
    if not columns:
        raise VitPruneError("nothing to plot: no latency results; run 'vitprune profile' first")
    styles = method_styles(comparison)
    with_accuracy = bool(comparison.datasets)
    legend_rows = -(-len(styles) // 7)
    legend_height = 0.25 + 0.22 * legend_rows  # inches
    figure, axes = plt.subplots(
        2 if with_accuracy else 1,
        len(columns),
        figsize=(4.6 * len(columns), 4.2 * (2 if with_accuracy else 1) + legend_height),
        squeeze=False,
    )
    for index, column in enumerate(columns):
        _latency_panel(axes[0][index], comparison, column, styles)
        if with_accuracy:
            _accuracy_panel(axes[1][index], comparison, column, styles, comparison.datasets[0])
    handles = [
        plt.Line2D([], [], linestyle="", markersize=9 if method == comparison.baseline else 7, **style)
        for method, style in styles.items()
    ]
    labels = [f"{method} (baseline)" if method == comparison.baseline else method for method in styles]
    figure.legend(handles, labels, loc="lower center", ncol=min(7, len(labels)), frameon=False, fontsize=9)
    figure.tight_layout(rect=(0, legend_height / figure.get_figheight(), 1, 1))
    return figure


def _points(comparison: Comparison, column, value):
    """Per method: (x, y, spread) sorted by x, one per row with a cell in ``column``."""
    found: dict[str, list[tuple[float, float, float]]] = {}
    for row in comparison.rows:
        cell = row.cells.get(column)
        point = value(row, cell) if cell is not None else None
        if point is not None:
            found.setdefault(row.method, []).append((*point, latency_spread(cell)))
    return {method: sorted(points) for method, points in found.items()}


def _latency_panel(axis, comparison, column, styles) -> None:
    points = _points(
        comparison, column, lambda row, cell: (row.macs / 1e9, cell.latency_ms) if row.macs is not None else None
    )
    for method, series in points.items():
        x, y, spread = zip(*series)
        big = method == comparison.baseline
        axis.errorbar(
            x,
            y,
            yerr=spread,
            label=method,
            linestyle="-" if len(x) > 1 else "",
            markersize=11 if big else 6,
            capsize=3,
            linewidth=1,
            **styles[method],
        )
    axis.set(title=column.label, xlabel="MACs per image (G)", ylabel="median latency per query (ms)")
    axis.set_xlim(0, 1.08 * max((x for series in points.values() for x, _, _ in series), default=1))
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)


def _accuracy_panel(axis, comparison, column, styles, dataset) -> None:
    points = _points(
        comparison,
        column,
        lambda row, cell: (cell.latency_ms, 100 * row.accuracy[dataset]) if dataset in row.accuracy else None,
    )
    for method, series in points.items():
        x, y, spread = zip(*series)
        axis.errorbar(
            x,
            y,
            xerr=spread,
            label=method,
            linestyle="",
            markersize=11 if method == comparison.baseline else 6,
            capsize=3,
            **styles[method],
        )
    axis.set(title=f"{column.label}: accuracy", xlabel="median latency per query (ms)", ylabel=f"top-1 {dataset} (%)")
    axis.set_xlim(left=0)
    axis.set_ylim(0, 100)
    axis.grid(alpha=0.3)


def plot_comparison(comparison: Comparison, path: str | Path) -> Path:
    """Draw :func:`draw_comparison` into the PNG ``path`` (written atomically)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise VitPruneError(f"--plot writes a PNG; give a file name ending in .png, not {path.name!r}")
    figure = draw_comparison(comparison)
    with atomic_output(path, suffix=".png", option="--plot") as temporary:
        figure.savefig(temporary, format="png", dpi=120)
    plt.close(figure)
    return path


__all__ = ["draw_comparison", "latency_spread", "method_styles", "plot_comparison"]
