"""``vitprune export``: a pruned timm ViT → static-shape ONNX, checked against PyTorch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..export.parity import DEFAULT_PARITY_TOLERANCE
from .app import command, console, print_json, print_next
from .options import (
    DEFAULT_MODEL_NAME,
    BatchOption,
    ForceOption,
    JsonOption,
    ModelOption,
    RateOption,
    RatesOption,
    ScheduleOption,
    WeightsOption,
    with_method_knobs,
)


@command("export")
@with_method_knobs
def export(
    method: Annotated[
        str, typer.Option("--method", help="Token-reduction method (see 'vitprune methods').")
    ] = "topk-vpa",
    model: ModelOption = DEFAULT_MODEL_NAME,
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    weights: WeightsOption = "auto",
    batch: BatchOption = 1,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Keep the batch axis dynamic (token axes stay static).")
    ] = False,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (18 or later).")] = 18,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="ONNX file to write \\[default: engines/MODEL_METHOD_rRATE.onnx]."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Fail if ONNX Runtime differs from PyTorch by more than --atol.")
    ] = True,
    atol: Annotated[
        float, typer.Option("--atol", help="Parity bound (max |Δ| of the logits).")
    ] = DEFAULT_PARITY_TOLERANCE,
    plugin_nodes: Annotated[
        bool, typer.Option("--plugin-nodes", help="Emit one vitprune plugin node per pruning layer (TensorRT plugins).")
    ] = False,
    plugins: Annotated[bool, typer.Option("--plugins", hidden=True)] = False,
    force: ForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Export a token-pruned ViT to ONNX with static per-layer token counts.

    Example: vitprune export --method topk-vpa --rate 0.06
    """
    from ..export.onnx import export_onnx
    from ..pruning.spec import build_pruned_model

    started = time.perf_counter()
    with console.status("building the pruned model…"):
        network = build_pruned_model(model, method, rate, rates, schedule, weights, knobs or {})
    with console.status(f"exporting {model} / {method} to ONNX and checking it in ONNX Runtime…"):
        result = export_onnx(
            network,
            output,
            batch=batch,
            dynamic_batch=dynamic_batch,
            opset=opset,
            check=check,
            tolerance=atol,
            model_name=model,
            plugins=plugin_nodes or plugins,
            force=force,
        )
    record = result.record
    summary = {
        "path": str(result.path),
        "model": model,
        "method": method,
        "keep_counts": result.keep_counts,
        "gmacs": record.macs / 1e9,
        "baseline_gmacs": record.baseline_macs / 1e9,
        "macs_ratio": record.macs / record.baseline_macs,
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "parity_batches": result.parity_batches,
        "weights": record.weights,
        "size_mb": result.size_bytes / 1e6,
        "seconds": time.perf_counter() - started,
    }
    if json:
        print_json(summary)
        return
    console.print(f"[bold]keep counts[/] (tokens after each block): {' '.join(map(str, result.keep_counts))}")
    console.print(
        f"[bold]MACs[/] {summary['baseline_gmacs']:.3f} G → {summary['gmacs']:.3f} G (ratio {summary['macs_ratio']:.3f})"
    )
    console.print(
        f"[bold]parity[/] max |PyTorch − ONNX Runtime| = {result.parity_max_abs_diff:.2e} at batch "
        f"{', '.join(map(str, result.parity_batches))}" + ("" if check else " (not enforced: --no-check)")
    )
    console.print(f"[bold]weights[/] {record.weights}")
    console.print(f"[green]wrote[/] {result.path} ({summary['size_mb']:.1f} MB) in {summary['seconds']:.1f} s")
    print_next(["profile", result.path, "--backend", "ort-cpu"])
