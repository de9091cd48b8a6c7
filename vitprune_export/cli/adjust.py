"""``vitprune adjust``: per-layer pruning rates chosen while fine-tuning (VPA paper §3.3, Algorithm 2, GAS)."""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json
from .finetune import (
    DataOption,
    EpochsOption,
    LrOption,
    MinLrOption,
    SeedOption,
    TrainBatchOption,
    WarmupOption,
    WeightDecayOption,
)
from .options import DEFAULT_MODEL_NAME, JsonOption, ModelOption, WeightsOption, with_method_knobs


@command("adjust")
@with_method_knobs
def adjust(
    data: DataOption,
    epochs: EpochsOption,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Schedule JSON to write ('export --schedule' reads it).")
    ],
    model: ModelOption = DEFAULT_MODEL_NAME,
    method: Annotated[str, typer.Option("--method", help="topk, topk-vpa, evit, etps or tome.")] = "topk",
    rate: Annotated[
        float, typer.Option("--rate", "-r", help="Initial rate of every layer (the paper: 0.05 or 0.1).")
    ] = 0.1,
    layer_loops: Annotated[
        int, typer.Option("--layer-loops", help="m: passes over the layers (cyclic order, §3.3.1).")
    ] = 8,
    update_every: Annotated[
        int, typer.Option("--update-every", help="n: epochs between rate updates (Alg. 2 line 14).")
    ] = 2,
    max_step: Annotated[float, typer.Option("--max-step", help="Δr_max of Eq. 6.")] = 0.05,
    alpha: Annotated[float, typer.Option("--alpha", help="α, the slope of Eq. 6.")] = 10.0,
    max_rate: Annotated[float, typer.Option("--max-rate", help="Upper bound of any layer's rate.")] = 0.5,
    weights: WeightsOption = "auto",
    batch: TrainBatchOption = 16,
    lr: LrOption = None,
    min_lr: MinLrOption = 1e-6,
    warmup_epochs: WarmupOption = None,
    weight_decay: WeightDecayOption = 0.05,
    seed: SeedOption = 0,
    save_checkpoint: Annotated[
        Optional[Path],
        typer.Option("--save-checkpoint", help="Also write the fine-tuned weights (for eval/export --weights)."),
    ] = None,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Fine-tune while adjusting each layer's pruning rate (Φ, Eq. 6; GAS, Eq. 7–10); write the schedule.

    Example: vitprune adjust --model vitprune_tiny_patch4_32 --weights engines/tiny_digits.pt --data digits
    --method topk-vpa --epochs 12 --layer-loops 1 --batch 64 --lr 2e-4 -o engines/tiny_topk-vpa_gas.json
    """
    import torch

    from ..accuracy.adjust import AdjustSettings, adjust_rates, check_adjustable, save_adjusted_schedule
    from ..accuracy.finetune import TrainingRecipe, checkpoint_dict, prepare_training
    from ..accuracy.finetune import save_checkpoint as write_checkpoint
    from ..pruning.spec import resolve_method

    started = time.perf_counter()
    recipe = TrainingRecipe(
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        weight_decay=weight_decay,
        seed=seed,
    )
    settings = AdjustSettings(
        initial_rate=rate,
        layer_loops=layer_loops,
        update_every=update_every,
        max_step=max_step,
        alpha=alpha,
        max_rate=max_rate,
    )
    recipe.validate()
    settings.validate()
    resolved = resolve_method(method, knobs or {})
    check_adjustable(resolved)
    torch.manual_seed(seed)
    with console.status("loading the model and the data…"):
        network, model_kwargs, train_set, test_set = prepare_training(model, weights, data)
    result = adjust_rates(network, resolved, train_set, test_set, recipe, settings, progress=not json)
    save_adjusted_schedule(
        output,
        result,
        model=model,
        method=method,
        method_options=resolved.knob_values(),
        data=data,
        weights=str(weights),
        epochs=epochs,
        created_by="vitprune adjust",
    )
    if save_checkpoint is not None:
        write_checkpoint(
            save_checkpoint, checkpoint_dict(network, model, model_kwargs, epoch=epochs, accuracy=result.accuracy)
        )
    summary = {
        "schedule": str(output),
        "removed": list(result.schedule.removed),
        "keep_counts": list(result.schedule.tokens_out),
        "rates": result.rates,
        "updates": len(result.updates),
        "test_top1": result.accuracy,
        "checkpoint": str(save_checkpoint) if save_checkpoint else None,
        "seconds": time.perf_counter() - started,
    }
    if json:
        print_json(summary)
        return
    console.print(f"[bold]rates[/] {' '.join(f'{r:.3f}' for r in result.rates)}  ({len(result.updates)} updates)")
    console.print(
        f"[bold]removed[/] {' '.join(map(str, result.schedule.removed))} → tokens after each block "
        f"{' '.join(map(str, result.schedule.tokens_out))}"
    )
    if result.accuracy is not None:
        console.print(f"[bold]test top-1[/] {result.accuracy:.2%}")
    console.print(
        f"[green]wrote[/] {output}"
        + (f" and {save_checkpoint}" if save_checkpoint else "")
        + f" in {summary['seconds']:.1f} s"
    )
    weights_hint = f" --weights {save_checkpoint}" if save_checkpoint else ""
    console.print(f"next: vitprune export --model {model} --method {method} --schedule {output}{weights_hint}")
