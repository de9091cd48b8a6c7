"""``vitprune plan``: per-block keep counts chosen from the device's own block-latency curve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json, print_next
from .options import DEFAULT_MODEL_NAME, BatchOption, ForceOption, JsonOption, WeightsOption, with_method_knobs


@command("plan")
@with_method_knobs
def plan(
    model: Annotated[str, typer.Option("--model", "-m", help="timm model name.")] = DEFAULT_MODEL_NAME,
    method: Annotated[str, typer.Option("--method", help="Token-reduction method (see 'vitprune methods').")] = "topk",
    weights: WeightsOption = "random",
    backend: Annotated[str, typer.Option("--backend", help="ort-cpu | torch-cpu | torch-cuda.")] = "ort-cpu",
    latency_ms: Annotated[
        Optional[float], typer.Option("--latency-ms", help="Budget: latency of one query in ms.")
    ] = None,
    speedup: Annotated[
        Optional[float], typer.Option("--speedup", help="Budget: times as fast as the unpruned model (1.5).")
    ] = None,
    sensitivity: Annotated[
        Optional[Path],
        typer.Option(
            "--sensitivity",
            help="Block weights: a 'vitprune adjust' schedule (its rates) or JSON with a 'sensitivity' list "
            "[default: early blocks first].",
        ),
    ] = None,
    max_rate: Annotated[
        float, typer.Option("--max-rate", help="Most one block may remove, as a share of the tokens it receives.")
    ] = 0.25,
    threads: Annotated[
        Optional[int], typer.Option("--threads", min=1, help="CPU threads (intra-op) [default: the runtime's].")
    ] = None,
    batch: BatchOption = 1,
    points: Annotated[int, typer.Option("--points", min=2, help="Token counts measured on each curve.")] = 8,
    refine: Annotated[
        int, typer.Option("--refine", min=0, help="Rounds of extra points where the curve steps (0: none).")
    ] = 5,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, help="Timed queries per curve point (and per model checked).")
    ] = 60,
    warm_up: Annotated[int, typer.Option("--warm-up", min=0, help="Untimed queries per point first.")] = 10,
    statistic: Annotated[
        str,
        typer.Option("--statistic", help="median (the protocol) or min (steadier on a machine other jobs load)."),
    ] = "median",
    clock: Annotated[
        str,
        typer.Option(
            "--clock", help="wall (the protocol) or cpu (this thread's CPU time; --threads 1, a shared machine)."
        ),
    ] = "wall",
    remeasure: Annotated[bool, typer.Option("--remeasure", help="Measure the curves again even when cached.")] = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Measure the planned model beside the unpruned one.")
    ] = True,
    device_name: Annotated[
        Optional[str], typer.Option("--device-name", help="Folder name [default: e.g. cpu-2core].")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Schedule JSON [default: results/<device>/plans/<model>_<method>_<backend>_b<batch>_<budget>.json].",
        ),
    ] = None,
    force: ForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Measure one block's latency against its token count (cached per device), choose the keep counts
    that meet --latency-ms or --speedup, write a schedule that export, finetune, eval, flops and profile
    read with --schedule, and check the prediction by measuring the planned model.

    Example: vitprune plan --model vit_small_patch16_224 --method tome --speedup 1.5 --threads 2
    """
    from ..measure.plan import PlanRequest, plan_schedule

    request = PlanRequest(
        model=model,
        method=method,
        knobs=dict(knobs or {}),
        weights=weights,
        backend=backend,
        threads=threads,
        batch=batch,
        latency_ms=latency_ms,
        speedup=speedup,
        sensitivity=sensitivity,
        max_rate=max_rate,
        points=points,
        refine=refine,
        warmup=warm_up,
        iterations=iterations,
        device=device_name,
        output=output,
        force=force,
        statistic=statistic,
        clock=clock,
        remeasure=remeasure,
        verify=check,
    )
    with console.status("planning…") as status:
        outcome = plan_schedule(request, say=lambda message: status.update(message) if not json else None)
    chosen = outcome.plan
    if json:
        print_json(
            {
                **chosen.to_dict(),
                "schedule": str(outcome.schedule_path),
                "curves": str(outcome.curves_path),
                "curves_cached": outcome.curves_cached,
                "measured_ms": outcome.measured_ms,
                "measured_unpruned_ms": outcome.measured_unpruned_ms,
            }
        )
        return
    console.print(
        f"[bold]curves[/] {outcome.curves_path}"
        + (" (cached; --remeasure to measure again)" if outcome.curves_cached else "")
    )
    console.print(
        f"[bold]keep counts[/] {' '.join(map(str, outcome.keep_counts))} ({sum(outcome.keep_counts)} in total)"
    )
    console.print(
        f"[bold]predicted[/] {chosen.predicted_ms:.3f} ms (budget {chosen.budget_ms:.3f}, unpruned "
        f"{chosen.unpruned_ms:.3f}: ×{chosen.predicted_speedup:.2f})"
    )
    if outcome.measured_ms is not None:
        measured_speedup = outcome.measured_unpruned_ms / outcome.measured_ms
        console.print(
            f"[bold]measured[/]  {outcome.measured_ms:.3f} ms ({outcome.error:+.1%} of the prediction; unpruned "
            f"{outcome.measured_unpruned_ms:.3f} ms beside it: ×{measured_speedup:.2f})"
        )
    console.print(f"[green]wrote[/] {outcome.schedule_path}")
    print_next(["export", "--model", model, "--method", method, "--schedule", outcome.schedule_path])
