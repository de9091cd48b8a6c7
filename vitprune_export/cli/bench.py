"""``vitprune bench``: the whole latency table in one command — a grid measured interleaved, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..pruning.models import DEFAULT_MODEL
from .app import command, console
from .options import WeightsOption


@command("bench")
def bench(
    model: Annotated[str, typer.Option("--model", "-m", help="timm model name(s), comma-separated.")] = DEFAULT_MODEL,
    methods: Annotated[
        str, typer.Option("--methods", help="Methods, comma-separated ('none', the baseline, is always measured).")
    ] = "none,topk,topk-vpa,evit,etps,tome",
    rates: Annotated[
        Optional[str], typer.Option("--rates", help="Rates (tokens removed per block), comma-separated.")
    ] = "0.06",
    schedules: Annotated[
        Optional[str],
        typer.Option("--schedules", help="Schedule JSON files (tokens removed per block), comma-separated."),
    ] = None,
    backends: Annotated[
        str, typer.Option("--backends", help="torch-cpu, ort-cpu, ov-cpu, torch-cuda, trt; comma-separated.")
    ] = "torch-cpu,ort-cpu",
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes, comma-separated.")] = "1",
    precisions: Annotated[
        str,
        typer.Option(
            "--precisions", help="fp32, int8 (Q/DQ, on ort-cpu/ov-cpu; calibrated on random images), comma-separated."
        ),
    ] = "fp32",
    threads: Annotated[
        Optional[str],
        typer.Option("--threads", help="CPU thread counts, comma-separated [default: the runner chooses]."),
    ] = None,
    weights: WeightsOption = "random",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Results folder (one JSON per cell; ONNX files in onnx/).")
    ] = Path("results"),
    warm_up: Annotated[int, typer.Option("--warm-up", min=0, help="Untimed queries per cell first.")] = 10,
    iterations: Annotated[int, typer.Option("--iterations", min=1, help="Timed queries per cell.")] = 60,
    chunk: Annotated[int, typer.Option("--chunk", min=1, help="Queries per cell per interleaved round.")] = 5,
    force: Annotated[bool, typer.Option("--force", help="Measure cells again even when their result exists.")] = False,
    include: Annotated[
        Optional[list[Path]],
        typer.Option("--include", help="More results for the table, e.g. a device bundle's results/ (repeatable)."),
    ] = None,
    spinning: Annotated[
        Optional[str], typer.Option("--spinning", help="ort-cpu: intra-op thread spinning on | off | auto.")
    ] = None,
    graph_optimization: Annotated[
        Optional[str],
        typer.Option("--graph-optimization", help="ort-cpu: disable | basic | extended | all | auto."),
    ] = None,
    compile_mode: Annotated[
        Optional[str],
        typer.Option("--compile", help="torch-*: torch.compile mode (default, reduce-overhead, max-autotune)."),
    ] = None,
    device_name: Annotated[
        Optional[str], typer.Option("--device-name", help="Folder/column name [default: e.g. cpu-2core].")
    ] = None,
    plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write latency-vs-FLOPs plots.")] = True,
) -> None:
    """Measure models × methods × rates × backends × batch × threads, interleaved; then print the table.

    Each cell's result is written as soon as its group is measured; a second run skips
    cells already measured (--force redoes them); Ctrl-C keeps what is done.

    Example: vitprune bench --model vit_small_patch16_224 --methods none,topk,tome --rates 0.06
    --backends torch-cpu,ort-cpu --threads 1,2
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..measure.bench import BenchSettings, bench_grid
    from ..measure.compare import render_table
    from .bench_grid import check_includes, parse_grid

    settings = BenchSettings(
        output=output,
        weights=weights,
        warmup=warm_up,
        iterations=iterations,
        chunk=chunk,
        device=device_name,
        force=force,
        runner_options={
            "ort-cpu": {"spinning": spinning, "graph_optimization": graph_optimization},
            "torch-cpu": {"compile": compile_mode},
            "torch-cuda": {"compile": compile_mode},
        },
    )
    check_includes(list(include or []))
    cells = parse_grid(model, methods, rates, schedules, backends, batch, threads, precisions)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        outcome = bench_grid(
            cells,
            settings=settings,
            include=list(include or []),
            plot=plot,
            progress=progress,
            log=lambda line: progress.console.print(line, highlight=False),
        )
    report = outcome.report
    for batch_size, comparison in outcome.comparisons:
        console.print(render_table(comparison, title=f"batch {batch_size}: median ms per query (Δ% vs none)"))
    for path in outcome.plots:
        console.print(f"[green]wrote[/] {path}", highlight=False)
    console.print(
        f"{report.planned} cells: {len(report.written)} measured, {len(report.skipped_done)} already done"
        + (f" ({len(report.remeasured)} measured again: measured otherwise before)" if report.remeasured else "")
        + (f", {len(report.failed)} failed" if report.failed else "")
        + f"; results in {output}/",
        highlight=False,
    )
    if report.interrupted:
        console.print("interrupted: the cells measured so far are kept; run the same command again to resume")
        raise typer.Exit(130)
