"""``vitprune eval``: top-1 accuracy of a pruned ViT on a data set, and backend agreement."""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json
from .options import (
    DEFAULT_MODEL_NAME,
    BatchOption,
    DataOption,
    ForceOption,
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
    artifact: Annotated[
        Optional[Path],
        typer.Argument(
            help="An exported ONNX file (run in ONNX Runtime) or a built engine (.engine/.plan, run in TensorRT): "
            "its record names the model and pruning; --weights is the checkpoint it was exported from.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = "digits",
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
            "--backend",
            help="torch-cpu, or ort-cpu / ov-cpu: export to ONNX, run ONNX Runtime / OpenVINO, report agreement "
            "with PyTorch (an ONNX file given as ARTIFACT runs on ort-cpu unless ov-cpu is asked; an engine on trt).",
        ),
    ] = "torch-cpu",
    onnx: Annotated[
        Optional[Path],
        typer.Option(
            "--onnx", help="With --backend ort-cpu: an ONNX file exported from this model (else exported now)."
        ),
    ] = None,
    batch: BatchOption = 64,
    plugin_library: Annotated[
        Optional[Path], typer.Option("--plugins", help="With an engine: the plugin library to load.")
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write a results JSON (kind: accuracy) for 'vitprune compare'."),
    ] = None,
    force: ForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Top-1 accuracy on 'digits', 'digits-canvas' or an ImageFolder tree, with a pruning method and rate.

    Example: vitprune eval --model vitprune_tiny_patch4_32 --checkpoint engines/tiny_digits.pt
    --data digits --method topk --rate 0.1 --backend ort-cpu

    The deployed file: vitprune eval tiny_topk.onnx --checkpoint engines/tiny_digits.pt --data digits
    (or tiny_topk.engine on a machine with TensorRT and a GPU): top-1/top-5 and agreement with PyTorch.
    """
    from ..accuracy.data import Preprocessing, load_dataset
    from ..accuracy.evaluate import BACKENDS, accuracy_result, evaluate, evaluate_artifact
    from ..accuracy.runtime import processes
    from ..errors import VitPruneError
    from ..files import check_output
    from ..pruning.spec import build_pruned_model

    started = time.perf_counter()
    if output is not None:  # in the way or unwritable: said before any image is read
        check_output(output, "--output", force=force, suffix=".json")
    # under torchrun every process evaluates its share of the images; the first one reports and writes
    with processes("cpu") as (group, _device):
        if checkpoint is not None:
            if weights not in ("auto", str(checkpoint)):
                raise VitPruneError("give either --checkpoint or --weights, not both")
            weights = str(checkpoint)
        if artifact is not None:
            if method != "none" or rate is not None or rates is not None or schedule is not None or onnx is not None:
                raise VitPruneError(
                    f"{artifact} records its own pruning; drop --method/--rate/--rates/--schedule/--onnx"
                )
            record, result, network = evaluate_artifact(
                artifact,
                data,
                weights=weights,
                split=split,
                batch_size=batch,
                plugin_library=plugin_library,
                progress=not json,
                backend=None if backend == "torch-cpu" else backend,
            )
            if group.is_main:
                _report(record, result, network, output, json, started)
            return
        if backend not in BACKENDS:
            raise VitPruneError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "trt":
            raise VitPruneError("--backend trt runs an engine: vitprune eval MODEL.engine --weights CHECKPOINT")
        if onnx is not None and backend not in ("ort-cpu", "ov-cpu"):
            raise VitPruneError("--onnx is read only with --backend ort-cpu or ov-cpu")
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
        if group.is_main:
            _report(record, result, network, output, json, started)


def _report(record, result, network, output, json: bool, started: float) -> None:
    from ..measure.results import write_result
    from ..pruning.patch import keep_counts

    if output is not None:
        write_result(output, record)
    if json:
        print_json(record)
        return
    console.print(
        f"tokens after each block: {' '.join(map(str, keep_counts(network)))}  (weights: {record['weights']})"
    )
    top5 = f", top-5 {result.top5:.2%}" if result.top5 is not None else ""
    console.print(
        f"[bold]top-1[/] {result.top1:.2%}{top5} on {result.images} images of {record['accuracy']['dataset']} "
        f"({record['model']} / {record['method']}, {result.backend}); "
        f"MACs ratio {record['macs'] / record['baseline_macs']:.3f}"
    )
    if result.agreement is not None:
        console.print(
            f"[bold]agreement[/] with {result.reference_backend}: {result.agreement:.2%} identical top-1 "
            f"(PyTorch top-1 {result.reference_top1:.2%})"
        )
    tokens = record["accuracy"].get("kept_token_agreement")
    if tokens and tokens.get("mean") is not None:
        shares = " ".join(f"{entry['agreement']:.1%}" for entry in tokens["per_selection"])
        console.print(
            f"[bold]kept tokens[/] {tokens['mean']:.2%} of the fp32 model's choices on average "
            f"(per TopK/ArgMax, in order: {shares})",
            highlight=False,
        )
    if tokens and tokens.get("error"):
        console.print(f"[yellow]kept tokens not compared:[/] {tokens['error']}", highlight=False)
    if output is not None:
        console.print(f"[green]wrote[/] {output}")
    console.print(f"took {time.perf_counter() - started:.1f} s")
