"""``vitprune adjust``: per-layer pruning rates chosen while fine-tuning (VPA paper §3.3, Algorithm 2, GAS)."""

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import console, print_json, print_next
from .options import (
    DEFAULT_MODEL_NAME,
    DataOption,
    EpochsOption,
    JsonOption,
    ModelOption,
    ResumeOption,
    RunForceOption,
    WeightsOption,
    training_command,
)


@training_command("adjust")
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
    job: Any = None,  # --batch … --seed here, --device … --compile before --resume: with_training_options
    save_checkpoint: Annotated[
        Optional[Path],
        typer.Option("--save-checkpoint", help="Also write the fine-tuned weights (for eval/export --weights)."),
    ] = None,
    resume: ResumeOption = False,
    force: RunForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Fine-tune while adjusting each layer's pruning rate (Φ, Eq. 6; GAS, Eq. 7–10); write the schedule.

    Example: vitprune adjust --model vitprune_tiny_patch4_32 --weights engines/tiny_digits.pt --data digits
    --method topk-vpa --epochs 12 --layer-loops 1 --batch 64 --lr 2e-4 -o engines/tiny_topk-vpa_gas.json

    Several processes: torchrun --nproc-per-node N --no-python vitprune adjust … (every process takes the
    same rate decisions, from losses and gradients summed over the processes).
    """
    from ..accuracy.adjust import AdjustSettings, run_adjust

    settings = AdjustSettings(
        initial_rate=rate,
        layer_loops=layer_loops,
        update_every=update_every,
        max_step=max_step,
        alpha=alpha,
        max_rate=max_rate,
    )
    summary = run_adjust(job, settings, checkpoint=save_checkpoint)
    if summary is None:  # not the main process of a torchrun job
        return
    if json:
        print_json(summary)
        return
    console.print(f"[bold]rates[/] {' '.join(f'{r:.3f}' for r in summary['rates'])}  ({summary['updates']} updates)")
    console.print(
        f"[bold]removed[/] {' '.join(map(str, summary['removed']))} → tokens after each block "
        f"{' '.join(map(str, summary['keep_counts']))}"
    )
    if summary["test_top1"] is not None:
        console.print(f"[bold]test top-1[/] {summary['test_top1']:.2%}")
    console.print(
        f"[green]wrote[/] {output}"
        + (f" and {save_checkpoint}" if save_checkpoint else "")
        + f" in {summary['seconds']:.1f} s"
    )
    weights_hint = ["--weights", save_checkpoint] if save_checkpoint else []
    print_next(["export", "--model", model, "--method", method, "--schedule", output, *weights_hint])
