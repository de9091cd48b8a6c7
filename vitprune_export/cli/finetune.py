"""``vitprune finetune``: train a (pruned) ViT on a data set; AdamW + warm-up cosine (VPA paper §4.1.1)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from .app import console, print_json, print_next
from .options import (
    DEFAULT_MODEL_NAME,
    DataOption,
    EpochsOption,
    JsonOption,
    MethodOption,
    ModelOption,
    RateOption,
    RatesOption,
    ResumeOption,
    RunForceOption,
    ScheduleOption,
    WeightsOption,
    training_command,
)


@training_command("finetune")
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
    job: Any = None,  # --batch … --seed here, --device … --compile before --resume: with_training_options
    resume: ResumeOption = False,
    force: RunForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Fine-tune a ViT, pruned with --method and a rate, on --data; write a checkpoint.

    Example: vitprune finetune --model vitprune_tiny_patch4_32 --weights random --data digits
    --epochs 24 --batch 64 --lr 2e-3 -o engines/tiny_digits.pt

    Several processes: torchrun --nproc-per-node N --no-python vitprune finetune … (--batch is the global batch).
    """
    from ..accuracy.finetune import run_finetune

    summary = run_finetune(job, rate=rate, rates=rates, schedule=schedule)
    if summary is None:  # not the main process of a torchrun job
        return
    if json:
        print_json(summary)
        return
    console.print(
        f"[bold]test top-1[/] {summary['test_top1']:.2%} after {summary['epochs']} epochs ({summary['test_data']}); "
        f"{summary['world_size']} process(es), global batch {summary['global_batch']}, {summary['device']}"
    )
    console.print(f"[green]wrote[/] {output} in {summary['seconds']:.1f} s")
    print_next(["eval", "--model", model, "--checkpoint", output, "--data", data, "--method", "topk", "--rate", "0.1"])
