"""``vitprune compare``: result JSONs → the device table (VPA paper Table 3) and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import VitPruneError
from .app import command, console, err_console


@command("compare")
def compare(
    results: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Result JSON files and/or folders \\[default: results/, where 'vitprune profile' writes]."),
    ] = None,
    references: Annotated[
        bool, typer.Option("--references", help="Also read the results the project measured (shipped with vitprune).")
    ] = False,
    baseline: Annotated[
        str, typer.Option("--baseline", help="Method every Δ% is measured against, per model and device.")
    ] = "none",
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | markdown | csv | json.")] = "table",
    batch: Annotated[
        Optional[int], typer.Option("--batch", "-b", min=1, help="Keep only latency results of this batch size.")
    ] = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Also draw latency vs FLOPs (and accuracy vs latency) to this PNG.")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write the markdown/csv/json text to this file instead of stdout."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the --output or --plot file if it exists.")] = False,
) -> None:
    """Rows = method (+ rate), columns = device/backend; each cell the median latency and its Δ% vs the baseline.

    Example: vitprune compare results --format markdown --plot latency.png; vitprune compare --references
    """
    import sys

    from ..files import atomic_write_text, check_output
    from ..measure.compare import FORMATS, build_comparison, render, render_table
    from ..measure.results import DEFAULT_ROOT, load_results, reference_results

    if fmt not in FORMATS:
        raise VitPruneError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if output is not None and fmt == "table":
        raise VitPruneError("--output writes text: use it with --format markdown, csv or json")
    if output is not None:
        check_output(output, "--output", force=force)
    if plot is not None:
        check_output(plot, "--plot", force=force, suffix=".png")
    if results:
        sources = list(results)
    else:  # results/ of the working directory; with --references only when it holds JSON (not just a cache)
        sources = [DEFAULT_ROOT] if not references or any(DEFAULT_ROOT.rglob("*.json")) else []
    if references:
        sources.append(reference_results())
    comparison = build_comparison(load_results(sources), baseline=baseline, batch=batch)
    if fmt == "table":
        console.print(render_table(comparison))
    else:
        text = render(comparison, fmt)
        if output is not None:
            atomic_write_text(output, text)
            console.print(f"[green]wrote[/] {output}", highlight=False)
        else:
            sys.stdout.write(text)
    if plot is not None:
        from ..measure.plots import plot_comparison

        plot_comparison(comparison, plot)
        message = f"[green]wrote[/] {plot}"
        (console if fmt == "table" or output is not None else err_console).print(message, highlight=False)
