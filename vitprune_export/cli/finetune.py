"""``vitprune finetune``: train a (pruned) ViT on a data set; AdamW + warm-up cosine (VPA paper §4.1.1)."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, err_console, print_json, print_next
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
    Optional[float], typer.Option("--lr", help="Peak learning rate \\[default: the paper's 5e-4·batch/512].")
]
MinLrOption = Annotated[float, typer.Option("--min-lr", help="Final learning rate (lr_min of Eq. 11).")]
WarmupOption = Annotated[
    Optional[float],
    typer.Option("--warmup-epochs", help="Linear warm-up epochs (W of Eq. 11) \\[default: min(5, epochs/10)]."),
]
WeightDecayOption = Annotated[float, typer.Option("--weight-decay", help="AdamW weight decay.")]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the run: initialisation, shuffling, dropout and GAS sampling.")
]
DeviceOption = Annotated[
    str,
    typer.Option(
        "--device", help="auto (CUDA when present), cpu, cuda or cuda:N; torchrun gives each process cuda:LOCAL_RANK."
    ),
]
AmpOption = Annotated[
    str, typer.Option("--amp", help="Mixed precision: off, bf16 (CUDA or CPU) or fp16 (CUDA, with a gradient scaler).")
]
WorkersOption = Annotated[
    Optional[int],
    typer.Option(
        "--workers", help="DataLoader processes \\[default: 0 for in-memory digits, else CPUs per process − 1, ≤ 8]."
    ),
]
CompileOption = Annotated[bool, typer.Option("--compile", help="torch.compile the training forward pass.")]
ResumeOption = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue from the training state (OUTPUT.state.pt, e.g. x.pt.state.pt, written after every epoch); "
        "model, method, schedule, data, processes and training options must be the saved run's.",
    ),
]
RunForceOption = Annotated[
    bool,
    typer.Option("--force", help="Replace the output, and start again over an earlier run's training state."),
]


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
    device: DeviceOption = "auto",
    amp: AmpOption = "off",
    workers: WorkersOption = None,
    compile: CompileOption = False,
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
    from ..accuracy.finetune import RunSettings, TrainingRecipe, run_finetune

    recipe = TrainingRecipe(
        epochs=epochs,
        batch_size=batch,
        lr=lr,
        min_lr=min_lr,
        warmup_epochs=warmup_epochs,
        weight_decay=weight_decay,
        seed=seed,
    )
    settings = RunSettings(device=device, amp=amp, workers=workers, compile=compile)
    log = err_console.print if json else console.print
    summary = run_finetune(
        output,
        model=model,
        weights=weights,
        data=data,
        method=method,
        knobs=knobs or {},
        rate=rate,
        rates=rates,
        schedule=schedule,
        recipe=recipe,
        run=settings,
        resume=resume,
        force=force,
        progress=not json,
        log=log,
    )
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
