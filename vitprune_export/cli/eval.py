"""``vitprune eval``: top-1 accuracy of a pruned ViT on a data set, and backend agreement."""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json
from .finetune import DataOption
from .options import (
    DEFAULT_MODEL_NAME,
    BatchOption,
    JsonOption,
    MethodOption,
    ModelOption,
    RateOption,
    RatesOption,
    ScheduleOption,
    WeightsOption,
    with_method_knobs,
)


@command("eval")
@with_method_knobs
def eval_command(
    data: DataOption,
    model: ModelOption = DEFAULT_MODEL_NAME,
    method: MethodOption = "none",
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    checkpoint: Annotated[
        Optional[Path],
        typer.Option("--checkpoint", help="Checkpoint from 'vitprune finetune' (same as --weights PATH)."),
    ] = None,
    weights: WeightsOption = "auto",
    split: Annotated[str, typer.Option("--split", help="test (held-out images), train or all.")] = "test",
    backend: Annotated[
        str,
        typer.Option(
            "--backend", help="torch-cpu, or ort-cpu: export to ONNX, run ONNX Runtime, report agreement with PyTorch."
        ),
    ] = "torch-cpu",
    onnx: Annotated[
        Optional[Path],
        typer.Option(
            "--onnx", help="With --backend ort-cpu: an ONNX file exported from this model (else exported now)."
        ),
    ] = None,
    batch: BatchOption = 64,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write a results JSON (kind: accuracy) for 'vitprune compare'."),
    ] = None,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Top-1 accuracy on 'digits', 'digits-canvas' or an ImageFolder tree, with a pruning method and rate.

    Example: vitprune eval --model vitprune_tiny_patch4_32 --checkpoint engines/tiny_digits.pt
    --data digits --method topk --rate 0.1 --backend ort-cpu
    """
    from ..accuracy.data import Preprocessing, load_dataset
    from ..accuracy.evaluate import BACKENDS, accuracy_result, evaluate
    from ..errors import VitPruneError
    from ..measure.results import write_result
    from ..pruning.patch import keep_counts
    from ..pruning.spec import build_pruned_model

    started = time.perf_counter()
    if backend not in BACKENDS:
        raise VitPruneError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if onnx is not None and backend != "ort-cpu":
        raise VitPruneError("--onnx is read only with --backend ort-cpu")
    if checkpoint is not None:
        if weights not in ("auto", str(checkpoint)):
            raise VitPruneError("give either --checkpoint or --weights, not both")
        weights = str(checkpoint)
    with console.status("loading the model and the data…"):
        network = build_pruned_model(model, method, rate, rates, schedule, weights, knobs or {})
        dataset = load_dataset(data, split, Preprocessing.for_model(network))
    result = evaluate(
        network, dataset, backend=backend, batch_size=batch, onnx_path=onnx, model_name=model, progress=not json
    )
    record = accuracy_result(
        network,
        result,
        model_name=model,
        dataset=dataset.name,
        batch_size=batch,
        source="vitprune eval",
    )
    if output is not None:
        write_result(output, record)
    if json:
        print_json(record)
        return
    console.print(
        f"tokens after each block: {' '.join(map(str, keep_counts(network)))}  (weights: {record['weights']})"
    )
    console.print(
        f"[bold]top-1[/] {result.top1:.2%} on {result.images} images of {dataset.name} "
        f"({model} / {method}, {backend}); MACs ratio {record['macs'] / record['baseline_macs']:.3f}"
    )
    if result.agreement is not None:
        console.print(
            f"[bold]agreement[/] with {result.reference_backend}: {result.agreement:.2%} identical top-1 "
            f"(PyTorch top-1 {result.reference_top1:.2%})"
        )
    if output is not None:
        console.print(f"[green]wrote[/] {output}")
    console.print(f"took {time.perf_counter() - started:.1f} s")
