"""``vitprune finetune``: train a (pruned) ViT on a data set; AdamW + warm-up cosine (VPA paper §4.1.1)."""

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json
from .options import (
    DEFAULT_MODEL_NAME,
    JsonOption,
    MethodOption,
    ModelOption,
    RateOption,
    RatesOption,
    ScheduleOption,
    WeightsOption,
    with_method_knobs,
)

DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="'digits' (scikit-learn's 8×8 digits, resized), 'digits-canvas' (the digits small and centred on a black canvas, where the choice of tokens matters) or an ImageFolder DIR.",
    ),
]
EpochsOption = Annotated[int, typer.Option("--epochs", "-e", min=1, help="Training epochs (T).")]
TrainBatchOption = Annotated[int, typer.Option("--batch", "-b", min=1, help="Training batch size (the paper uses 16).")]
LrOption = Annotated[
    Optional[float], typer.Option("--lr", help="Peak learning rate [default: the paper's 5e-4·batch/512].")
]
MinLrOption = Annotated[float, typer.Option("--min-lr", help="Final learning rate (lr_min of Eq. 11).")]
WarmupOption = Annotated[
    Optional[float],
    typer.Option("--warmup-epochs", help="Linear warm-up epochs (W of Eq. 11) [default: min(5, epochs/10)]."),
]
WeightDecayOption = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the initialisation, shuffling and GAS sampling.")]


@command("finetune")
@with_method_knobs
def finetune(
    data: DataOption,
    epochs: EpochsOption,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Checkpoint to write (.pt); --weights/--checkpoint read it.")
    ],
    model: ModelOption = DEFAULT_MODEL_NAME,
    method: MethodOption = "none",
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    weights: WeightsOption = "auto",
    batch: TrainBatchOption = 16,
    lr: LrOption = None,
    min_lr: MinLrOption = 1e-6,
    warmup_epochs: WarmupOption = None,
    weight_decay: WeightDecayOption = 0.05,
    seed: SeedOption = 0,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Fine-tune a ViT, pruned with --method and a rate, on --data; write a checkpoint.

    Example: vitprune finetune --model vitprune_tiny_patch4_32 --weights random --data digits
    --epochs 24 --batch 64 --lr 2e-3 -o engines/tiny_digits.pt
    """
    import torch

    from ..accuracy.finetune import TrainingRecipe, checkpoint_dict, prepare_training, save_checkpoint
    from ..accuracy.finetune import finetune as run_finetune
    from ..pruning.patch import apply_method, keep_counts
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
    recipe.validate()
    resolved = resolve_method(method, knobs or {})
    torch.manual_seed(seed)
    with console.status("loading the model and the data…"):
        network, model_kwargs, train_set, test_set = prepare_training(model, weights, data)
        apply_method(network, resolved, rate=rate, rates=rates, schedule=schedule)
    if not json:
        console.print(
            f"{model} / {method}, tokens after each block: {' '.join(map(str, keep_counts(network)))}; "
            f"{len(train_set)} training and {len(test_set)} test images ({train_set.num_classes} classes); "
            f"lr {recipe.max_lr:.3g}, warm-up {recipe.warmup:g} epochs"
        )
    result = run_finetune(network, train_set, test_set, recipe, progress=not json)
    save_checkpoint(
        output, checkpoint_dict(network, model, model_kwargs, epoch=result.epochs, accuracy=result.accuracy)
    )
    summary = {
        "checkpoint": str(output),
        "model": model,
        "method": method,
        "keep_counts": keep_counts(network),
        "epochs": result.epochs,
        "test_top1": result.accuracy,
        "train_loss": [round(r.train_loss, 4) for r in result.history],
        "seconds": time.perf_counter() - started,
    }
    if json:
        print_json(summary)
        return
    console.print(f"[bold]test top-1[/] {result.accuracy:.2%} after {result.epochs} epochs ({test_set.name})")
    console.print(f"[green]wrote[/] {output} in {summary['seconds']:.1f} s")
    console.print(f"next: vitprune eval --model {model} --checkpoint {output} --data {data} --method topk --rate 0.1")
