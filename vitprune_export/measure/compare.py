"""Results → the device table of the VPA paper (Table 3) and its plots.

Rows are (model, method, rate — or a schedule tag when the rate is per-layer);
columns are (device, backend, precision), one batch size each. A cell is the
median latency of one query, with its change against the baseline method
(``--baseline none``) of the same model on the same device/backend:
``Δ% = 100 · (t_method / t_baseline − 1)``, as the paper's "4.53 (−46.9%)".
Each row also carries its MACs with ``Δ%`` against the unpruned model and the
top-1 accuracy of ``kind: "accuracy"`` results (one column per data set).
Rendered as a rich table, Markdown, CSV or JSON; :mod:`.plots` draws it.

Results that name their thread count (``threads``, as ``vitprune bench`` writes)
get a column per thread count. A result that carries ``noise`` (``vitprune
bench``: the spread of its paired rounds against the same baseline) marks its
Δ% as noise when that spread is larger than the difference: greyed in the
table, ``†`` in Markdown, with a note under the table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import VitPruneError, did_you_mean
from ..record import PruningRecord

FORMATS = ("table", "markdown", "csv", "json")


@dataclass(frozen=True)
class Column:
    device: str
    backend: str
    precision: str
    batch: int
    threads: int | None = None  # given only by results that name it (vitprune bench --threads)
    #: the results' runtime settings (threads, spinning, graph optimisation, …) as sorted (name, JSON) pairs:
    #: results measured with other settings never share a column
    settings: tuple[tuple[str, str], ...] = ()
    #: the settings that differ from another column of the same device, backend and precision (in the label)
    shown: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        precision = "" if self.precision == "fp32" else f" {self.precision}"
        threads = f" {self.threads}t" if self.threads else ""
        chosen = dict(self.settings)
        differing = "".join(f" {name}={chosen.get(name, '-')}" for name in self.shown)
        return f"{self.device} {self.backend}{precision} b{self.batch}{threads}{differing}"


@dataclass
class Cell:
    latency_ms: float
    images_per_s: float
    delta_pct: float | None = None
    source: str = ""
    noise: dict[str, Any] | None = None  # the result's paired-round noise (baseline, delta_pct, spread_pct, noisy)

    @property
    def noisy(self) -> bool:
        """The Δ% is within the measured noise (spread of the paired rounds larger than the difference)."""
        return bool(self.noise and self.noise.get("noisy"))


@dataclass
class Row:
    model: str
    method: str
    tag: str
    rate: float | None
    macs: int | None = None
    flops_delta_pct: float | None = None
    accuracy: dict[str, float] = field(default_factory=dict)  # dataset → top-1 (0..1)
    cells: dict[Column, Cell] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.model, self.method, self.tag)

    @property
    def label(self) -> str:
        return self.method if self.tag == "r0" else f"{self.method} {self.tag}"


@dataclass
class Comparison:
    baseline: str
    columns: list[Column]
    rows: list[Row]
    datasets: list[str]

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(row.model for row in self.rows))

    def baseline_row(self, model: str) -> Row | None:
        candidates = [row for row in self.rows if row.model == model and row.method == self.baseline]
        candidates.sort(key=lambda row: row.tag != "r0")
        return candidates[0] if candidates else None


#: entries of a result's ``settings`` that say how a setting was found, not what ran: never split a column
BOOKKEEPING_SETTINGS = frozenset({"chosen_by", "tuning_ms", "parity_vs_onnxruntime"})


def _settings_of(result: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The result's runtime settings as sorted (name, JSON value) pairs; bench's top-level threads stand apart,
    and how a setting was found (tuned, given, the timings of the candidates) is not a setting."""
    settings = result.get("settings") if isinstance(result.get("settings"), dict) else {}
    settings = {name: value for name, value in settings.items() if name not in BOOKKEEPING_SETTINGS}
    if result.get("threads"):
        settings = {name: value for name, value in settings.items() if name != "threads"}
    return tuple(sorted((str(name), json.dumps(value, sort_keys=True)) for name, value in settings.items()))


def _column_of(result: dict[str, Any]) -> tuple[str, str, str, int | None, tuple[tuple[str, str], ...]]:
    threads = result.get("threads")
    threads = int(threads) if threads else None
    return (result["device"], result["backend"], result["precision"], threads, _settings_of(result))


def _differing_settings(keys: list[tuple]) -> dict[tuple, tuple[str, ...]]:
    """Per column key, the setting names whose values differ among columns of one device, backend, precision."""
    groups: dict[tuple, list[dict[str, str]]] = {}
    for key in keys:
        groups.setdefault(key[:3], []).append(dict(key[4]))
    shown = {}
    for key in keys:
        group = groups[key[:3]]
        names = sorted({name for settings in group for name in settings})
        shown[key] = tuple(name for name in names if len({settings.get(name) for settings in group}) > 1)
    return shown


def _row_key(result: dict[str, Any]) -> tuple[str, str, str]:
    return (result["model"], result["method"], PruningRecord.from_metadata(result).rate_tag)


def _method_order() -> list[str]:
    try:
        from ..pruning.methods import list_methods

        return list_methods()
    except Exception:  # ordering only
        return []


def build_comparison(results: list[dict[str, Any]], baseline: str = "none", batch: int | None = None) -> Comparison:
    """Group results into rows × columns, compute Δ% against ``baseline`` on the same column.

    Errors: a column whose latency results mix batch sizes (pick one with ``batch``),
    a model with no ``baseline`` result, no latency result at all.
    """
    latency = [r for r in results if r["kind"] == "latency"]
    accuracy = [r for r in results if r["kind"] == "accuracy"]
    if batch is not None:
        latency = [r for r in latency if r["batch"] == batch]
        if not latency:
            raise VitPruneError(
                f"no latency result has batch {batch}; batches present: {_batches(results)}; choose one with --batch"
            )
    if not latency:
        raise VitPruneError("no latency results among the inputs; run 'vitprune profile' first")

    batches_per_column: dict[tuple, set[int]] = {}
    for result in latency:
        batches_per_column.setdefault(_column_of(result), set()).add(result["batch"])
    for (device, backend, precision, *_), batches in batches_per_column.items():
        if len(batches) > 1:
            raise VitPruneError(
                f"column '{device} {backend} {precision}' mixes batch sizes {', '.join(map(str, sorted(batches)))}; "
                "compare one at a time with --batch N"
            )
    shown = _differing_settings(list(batches_per_column))
    column_by_key = {
        key: Column(*key[:3], next(iter(batches)), key[3], key[4], shown[key])
        for key, batches in batches_per_column.items()
    }
    columns = sorted(
        column_by_key.values(), key=lambda c: (c.device, c.backend, c.precision, c.threads or 0, c.settings)
    )

    rows: dict[tuple, Row] = {}

    def row_for(result: dict[str, Any]) -> Row:
        key = _row_key(result)
        if key not in rows:
            rows[key] = Row(model=key[0], method=key[1], tag=key[2], rate=result.get("rate"))
        row = rows[key]
        if row.macs is None and result.get("macs") is not None:
            row.macs = int(result["macs"])
            if result.get("baseline_macs"):
                row.flops_delta_pct = 100.0 * (row.macs / result["baseline_macs"] - 1)
        return row

    for result in sorted(latency, key=lambda r: r.get("created", "")):  # the newest measurement wins a cell
        row = row_for(result)
        row.cells[column_by_key[_column_of(result)]] = Cell(
            latency_ms=float(result["latency_ms"]["median"]),
            images_per_s=float(result["images_per_s"]),
            source=str(result.get("_path", result.get("source", ""))),
            noise=result.get("noise") if isinstance(result.get("noise"), dict) else None,
        )
    datasets: list[str] = []
    for result in sorted(accuracy, key=lambda r: r.get("created", "")):
        row = row_for(result)
        dataset = str(result["accuracy"]["dataset"])
        row.accuracy[dataset] = float(result["accuracy"]["top1"])
        if dataset not in datasets:
            datasets.append(dataset)

    order = {name: index for index, name in enumerate(_method_order())}
    ordered = sorted(
        rows.values(),
        key=lambda r: (r.model, r.method != baseline, order.get(r.method, len(order)), r.method, r.rate or 0.0, r.tag),
    )
    comparison = Comparison(baseline=baseline, columns=columns, rows=ordered, datasets=datasets)
    _apply_baseline(comparison)
    return comparison


def _batches(results: list[dict[str, Any]]) -> str:
    return ", ".join(map(str, sorted({r["batch"] for r in results if r["kind"] == "latency"}))) or "none"


def _apply_baseline(comparison: Comparison) -> None:
    for model in comparison.models:
        base = comparison.baseline_row(model)
        if base is None or not base.cells:
            methods = sorted({row.method for row in comparison.rows if row.model == model})
            near = did_you_mean(comparison.baseline, methods)
            raise VitPruneError(
                f"no baseline: model {model!r} has no latency result for method {comparison.baseline!r}{near} "
                f"(methods present: {', '.join(methods)}); profile it with --method {comparison.baseline} "
                "or pick another with --baseline"
            )
        for row in comparison.rows:
            if row.model != model:
                continue
            if row.flops_delta_pct is None and row.macs is not None and base.macs:
                row.flops_delta_pct = 100.0 * (row.macs / base.macs - 1)
            for column, cell in row.cells.items():
                reference = base.cells.get(column)
                if reference is not None and reference.latency_ms > 0:
                    cell.delta_pct = 100.0 * (cell.latency_ms / reference.latency_ms - 1)
                if cell.noise and cell.noise.get("baseline") != comparison.baseline:
                    cell.noise = None  # measured against another baseline: says nothing about this Δ%


# ---------------------------------------------------------------- rendering


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:+.1f}%".replace("-", "−")


NOISE_MARK = "†"
NOISE_NOTE = (
    f"{NOISE_MARK} grey Δ%: within the noise — the spread of the paired rounds against the baseline "
    "is larger than the difference"
)


def _latency_text(cell: Cell | None, is_baseline: bool) -> str:
    if cell is None:
        return "–"
    if is_baseline or cell.delta_pct is None:
        return f"{cell.latency_ms:.2f}"
    return f"{cell.latency_ms:.2f} ({_pct(cell.delta_pct)}){NOISE_MARK if cell.noisy else ''}"


def has_noisy_cells(comparison: Comparison) -> bool:
    return any(
        cell.noisy for row in comparison.rows if row.method != comparison.baseline for cell in row.cells.values()
    )


def _macs_text(row: Row) -> str:
    if row.macs is None:
        return "–"
    gmacs = f"{row.macs / 1e9:.2f}" if row.macs >= 1e9 else f"{row.macs / 1e9:.3f}"
    if row.flops_delta_pct is None or abs(row.flops_delta_pct) < 1e-9:
        return gmacs
    return f"{gmacs} ({_pct(row.flops_delta_pct)})"


def text_grid(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of display strings, shared by the table and Markdown renderers."""
    several_models = len(comparison.models) > 1
    header = (["model"] if several_models else []) + ["method", "GMACs"]
    header += [f"top-1 {dataset} (%)" for dataset in comparison.datasets]
    header += [f"{column.label} (ms)" for column in comparison.columns]
    body = []
    for row in comparison.rows:
        is_baseline = row.method == comparison.baseline
        label = f"({row.method})" if is_baseline else row.label
        cells = ([row.model] if several_models else []) + [label, _macs_text(row)]
        cells += [f"{100 * row.accuracy[d]:.2f}" if d in row.accuracy else "–" for d in comparison.datasets]
        cells += [_latency_text(row.cells.get(column), is_baseline) for column in comparison.columns]
        body.append(cells)
    return header, body


def render_table(comparison: Comparison, title: str | None = None):
    """A rich Table (print it with a Console)."""
    from rich.table import Table

    header, body = text_grid(comparison)
    from rich.text import Text

    table = Table(
        title=Text(
            title or f"latency per device (median ms per query; Δ% vs {comparison.baseline} on the same device)"
        ),
        caption=NOISE_NOTE if has_noisy_cells(comparison) else None,
    )
    for index, name in enumerate(header):  # Text, not markup: a device named 'x[/x]' is a name
        table.add_column(Text(name), justify="left" if index < (2 if len(comparison.models) > 1 else 1) else "right")
    for cells in body:
        table.add_row(*(Text(text, style="dim") if text.endswith(NOISE_MARK) else Text(text) for text in cells))
    return table


def render_markdown(comparison: Comparison) -> str:
    header, body = text_grid(comparison)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    if has_noisy_cells(comparison):
        lines += ["", NOISE_NOTE.replace("grey ", "")]
    return "\n".join(lines) + "\n"


def comparison_dict(comparison: Comparison) -> dict[str, Any]:
    return {
        "baseline": comparison.baseline,
        "columns": [
            {
                "label": c.label,
                "device": c.device,
                "backend": c.backend,
                "precision": c.precision,
                "batch": c.batch,
                "threads": c.threads,
                "settings": {name: json.loads(value) for name, value in c.settings},
            }
            for c in comparison.columns
        ],
        "datasets": comparison.datasets,
        "rows": [
            {
                "model": row.model,
                "method": row.method,
                "rate": row.rate,
                "tag": row.tag,
                "macs": row.macs,
                "flops_delta_pct": row.flops_delta_pct,
                "accuracy": row.accuracy,
                "latency": {
                    column.label: {
                        "median_ms": cell.latency_ms,
                        "images_per_s": cell.images_per_s,
                        "delta_pct": cell.delta_pct,
                        "noise": cell.noise,
                    }
                    for column, cell in row.cells.items()
                },
            }
            for row in comparison.rows
        ],
    }


def render_json(comparison: Comparison) -> str:
    return json.dumps(comparison_dict(comparison), indent=2) + "\n"


def render_csv(comparison: Comparison) -> str:
    """One line per row; numeric columns (no units in the cells) for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["model", "method", "rate", "tag", "macs", "flops_delta_pct"]
    header += [f"top1_{dataset}" for dataset in comparison.datasets]
    for column in comparison.columns:
        header += [f"{column.label} median_ms", f"{column.label} delta_pct"]
    writer.writerow(header)
    for row in comparison.rows:
        line: list[Any] = [
            row.model,
            row.method,
            "" if row.rate is None else row.rate,
            row.tag,
            row.macs or "",
            _num(row.flops_delta_pct),
        ]
        line += [_num(row.accuracy.get(d)) for d in comparison.datasets]
        for column in comparison.columns:
            cell = row.cells.get(column)
            line += [_num(cell.latency_ms if cell else None), _num(cell.delta_pct if cell else None)]
        writer.writerow(line)
    return buffer.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def render(comparison: Comparison, fmt: str) -> str:
    """Markdown, CSV or JSON text (the rich table is :func:`render_table`)."""
    if fmt == "markdown":
        return render_markdown(comparison)
    if fmt == "csv":
        return render_csv(comparison)
    if fmt == "json":
        return render_json(comparison)
    raise VitPruneError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")


__all__ = [
    "Cell",
    "Column",
    "Comparison",
    "FORMATS",
    "Row",
    "build_comparison",
    "comparison_dict",
    "render",
    "render_csv",
    "render_json",
    "render_markdown",
    "render_table",
]
