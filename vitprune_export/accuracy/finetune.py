"""Pruning-aware fine-tuning: AdamW with a warm-up cosine learning rate.

Ishibashi & Meng 2025, §4.1.1: AdamW, and the learning rate of Eq. 11 after a linear warm-up
(:func:`~vitprune_export.accuracy.recipe.warmup_cosine_lr`; training the tiny ViT from random weights
needs a larger peak than the paper's default, see docs/accuracy.md).

The model may be patched with any method: the patched forward is trainable
(gradients flow through gather, merge and proportional attention), so the
network learns to work with the tokens it keeps. The checkpoint and the training
state it writes: :mod:`~vitprune_export.accuracy.checkpoints`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import VitPruneError
from .checkpoints import (
    check_run_outputs,
    checkpoint_dict,
    load_training_state,
    restore_training_state,
    run_identity,
    save_checkpoint,
    save_training_state,
    training_state_path,
)
from .data import ImageDataset
from .recipe import EpochRecord, RunSettings, TrainingRecipe, paper_max_lr, warmup_cosine_lr
from .runtime import Processes
from .training import TrainingJob, TrainingSession, prepare_training, run_training


def make_optimizer(model: torch.nn.Module, recipe: TrainingRecipe) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, position embeddings and prefix tokens (timm's convention)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        skip = parameter.ndim <= 1 or name.endswith(("pos_embed", "cls_token", "reg_token", "dist_token"))
        (no_decay if skip else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.max_lr)


@dataclass
class FinetuneResult:
    history: list[EpochRecord]
    accuracy: float | None
    seconds: float
    world_size: int = 1
    global_batch: int = 0
    device: str = "cpu"

    @property
    def epochs(self) -> int:
        return len(self.history)


def train_one_epoch(
    network: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    recipe: TrainingRecipe,
    epoch: int,
    *,
    global_sizes: list[int],
    processes: Processes = Processes(),
    device: torch.device = torch.device("cpu"),
    amp: str = "off",
    scaler: torch.amp.GradScaler | None = None,
    on_step: Callable[[int], None] | None = None,
) -> float:
    """One pass over ``loader`` (``epoch`` counts from 0); returns the mean training loss over all processes.

    Each process's loss is its summed cross-entropy times ``W / global batch``: DDP averages the
    gradients over the ``W`` processes, so a step equals one process's step on the whole global batch.
    """
    from .runtime import autocast

    network.train()
    total, count = 0.0, 0
    steps = len(global_sizes)
    for step, (images, labels) in enumerate(loader):
        lr = warmup_cosine_lr(epoch + step / steps, recipe)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with autocast(amp, device):
            logits = network(images)
        if processes.distributed:
            loss_sum = F.cross_entropy(logits.float(), labels, reduction="sum")
            loss = loss_sum * (processes.world_size / global_sizes[step])
        else:  # the plain mean: one process rounds exactly as it always did
            loss = F.cross_entropy(logits.float(), labels)
            if not torch.isfinite(loss):
                raise VitPruneError(f"the training loss became {loss.item()} in epoch {epoch + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += float(loss_sum.detach()) if processes.distributed else float(loss.detach()) * labels.shape[0]
        count += labels.shape[0]
        if on_step is not None:
            on_step(global_sizes[step])
    network.eval()
    total, count = processes.sum([total, count])
    mean = total / max(count, 1)
    if not math.isfinite(mean):
        raise VitPruneError(f"the training loss became {mean} in epoch {epoch + 1}; lower --lr")
    return mean


def finetune(
    model: torch.nn.Module,
    train_set: ImageDataset,
    test_set: ImageDataset | None,
    recipe: TrainingRecipe,
    *,
    run: RunSettings = RunSettings(),
    processes: Processes | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    log: Callable[[str], None] | None = None,
    description: str = "fine-tuning",
    state_path: str | Path | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Train ``model`` (patched or not) in place; top-1 on ``test_set`` after every epoch.

    ``on_epoch_end`` sees each :class:`EpochRecord` and may re-patch the model
    (``vitprune adjust`` changes the per-layer rates there; the parameters, and so
    the optimiser's state, are untouched by patching); when it has ``state_dict``/
    ``load_state_dict`` its state travels in the training state too.

    Under torchrun (``processes`` with more than one process) the model trains
    wrapped in DistributedDataParallel; only the main process shows progress,
    logs and writes ``state_path``. ``state_path``: the training state written
    after every epoch (model, optimiser, gradient scaler, hook, RNG, history);
    ``resume`` starts from it and ends as the uninterrupted run would. ``identity``: what the run is
    (model, weights, method, schedule, data: :func:`run_identity`), saved in the state with the number of
    processes and compared field by field on ``resume``.
    """
    from .evaluate import top1_on
    from .runtime import GlobalBatchSampler, check_amp, grad_scaler, loader, resolve_device

    recipe.validate()
    processes = processes or Processes.current()
    device = device or resolve_device(run.device, processes.local_rank)
    check_amp(run.amp, device)
    torch.manual_seed(recipe.seed)
    model.to(device)
    optimizer = make_optimizer(model, recipe)
    scaler = grad_scaler(run.amp, device)
    history: list[EpochRecord] = []
    identity = run_identity(**(identity or {}), world_size=processes.world_size)
    if resume:
        history = restore_training_state(
            load_training_state(state_path), model, optimizer, scaler, on_epoch_end, recipe, processes, identity
        )
    network = _wrap(model, device, processes, run.compile)
    sampler = GlobalBatchSampler(len(train_set), recipe.batch_size, processes, seed=recipe.seed)
    global_sizes = sampler.global_sizes()
    train_loader = loader(train_set, sampler, device, run.workers)
    started = time.perf_counter()
    accuracy = history[-1].accuracy if history else None
    with _progress(progress and processes.is_main) as bar:
        task = bar.add_task(
            description,
            total=(recipe.epochs - len(history)) * sum(global_sizes),
            epoch=f"{len(history) + 1}/{recipe.epochs}",
            acc="—" if accuracy is None else f"{accuracy:.1%}",
        )
        for epoch in range(len(history), recipe.epochs):
            epoch_started = time.perf_counter()
            sampler.set_epoch(epoch)
            train_loader.generator.manual_seed(recipe.seed * 100_003 + epoch)  # loader processes' seeds, per epoch
            loss = train_one_epoch(
                network,
                train_loader,
                optimizer,
                recipe,
                epoch,
                global_sizes=global_sizes,
                processes=processes,
                device=device,
                amp=run.amp,
                scaler=scaler,
                on_step=lambda images: bar.update(task, advance=images),
            )
            train_seconds = time.perf_counter() - epoch_started
            if test_set is not None:
                accuracy = top1_on(model, test_set, batch_size=run.eval_batch, processes=processes, amp=run.amp)
            record = EpochRecord(
                epoch=epoch + 1,
                train_loss=loss,
                lr=warmup_cosine_lr(epoch + 1, recipe),
                accuracy=accuracy,
                seconds=time.perf_counter() - epoch_started,
                keep_counts=_keep_counts_or_empty(model),
                images_per_second=sum(global_sizes) / max(train_seconds, 1e-9),
            )
            history.append(record)
            if on_epoch_end is not None:
                on_epoch_end(record)
            if state_path is not None and processes.is_main:
                save_training_state(
                    state_path, model, optimizer, scaler, on_epoch_end, history, recipe, processes, identity
                )
            processes.barrier()
            bar.update(task, epoch=f"{epoch + 1}/{recipe.epochs}", acc="—" if accuracy is None else f"{accuracy:.1%}")
            if log is not None and processes.is_main:
                log(record.line(recipe.epochs))
    return FinetuneResult(
        history=history,
        accuracy=accuracy,
        seconds=time.perf_counter() - started,
        world_size=processes.world_size,
        global_batch=recipe.batch_size,
        device=str(device),
    )


def _wrap(model: torch.nn.Module, device: torch.device, processes: Processes, compile: bool) -> torch.nn.Module:
    """The module the training steps call: DDP across processes, then :func:`torch.compile` when asked."""
    network = model
    if processes.distributed:
        from torch.nn.parallel import DistributedDataParallel

        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile:
        network = torch.compile(network)
    return network


def _keep_counts_or_empty(model: torch.nn.Module) -> list[int]:
    """Tokens after each block of a patched model; [] for an unpatched one."""
    from ..pruning.patch import keep_counts

    try:
        return keep_counts(model)
    except VitPruneError:
        return []


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class ImagesPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} img/s" if task.speed else "– img/s")

    return Progress(
        TextColumn("[bold]{task.description}[/] epoch {task.fields[epoch]}"),
        BarColumn(),
        ImagesPerSecond(),
        TextColumn("test top-1 {task.fields[acc]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def run_finetune(
    job: TrainingJob, *, rate: float | None = None, rates: str | None = None, schedule: str | Path | None = None
) -> dict[str, Any] | None:
    """``vitprune finetune``: load, patch with ``job.method`` at ``rate``, ``rates`` or ``schedule``, train
    (one process or torchrun's), write the checkpoint to ``job.output``.

    The training state goes to :func:`training_state_path` of the output after every epoch. The output is
    checked before any work (:func:`check_run_outputs`): an existing one needs ``force``, an interrupted
    run's state ``resume`` or ``force``. Returns the summary on the main process, None on the others.
    """
    from ..pruning.patch import apply_method, keep_counts
    from ..pruning.spec import resolve_method

    model, method, recipe, run, log = job.model, job.method, job.recipe, job.run, job.log
    recipe.validate()
    resolved = resolve_method(method, job.knobs)

    def train(session: TrainingSession) -> FinetuneResult:
        network, group, train_set = session.network, session.processes, session.train_set
        apply_method(network, resolved, rate=rate, rates=rates, schedule=schedule)
        if log is not None and group.is_main:
            log(
                f"{model} / {method}, tokens after each block: {' '.join(map(str, keep_counts(network)))}; "
                f"{len(train_set)} training and {len(session.test_set)} test images ({train_set.num_classes} "
                f"classes); lr {recipe.max_lr:.3g}, warm-up {recipe.warmup:g} epochs; {session.device}, "
                f"amp {run.amp}, {group.world_size} process(es), global batch {recipe.batch_size}"
            )
        return finetune(
            network,
            train_set,
            session.test_set,
            recipe,
            run=run,
            processes=group,
            device=session.device,
            progress=job.progress,
            log=log,
            state_path=session.state_path,
            resume=job.resume,
            identity={**session.identity, "keep_counts": _keep_counts_or_empty(network)},
        )

    def save(session: TrainingSession, result: FinetuneResult) -> None:
        checkpoint = checkpoint_dict(
            session.network, model, session.model_kwargs, epoch=result.epochs, accuracy=result.accuracy
        )
        save_checkpoint(job.output, checkpoint)

    def summary(session: TrainingSession, result: FinetuneResult) -> dict[str, Any]:
        return {
            "model": model,
            "method": method,
            "keep_counts": keep_counts(session.network),
            "epochs": result.epochs,
            "test_top1": result.accuracy,
            "test_data": session.test_set.name,
            "train_loss": [round(r.train_loss, 4) for r in result.history],
            "images_per_second": [round(r.images_per_second, 1) for r in result.history],
        }

    return run_training(job, "finetune", resolved, train, save, summary, output_key="checkpoint")


__all__ = [
    "EpochRecord",
    "FinetuneResult",
    "RunSettings",
    "TrainingJob",
    "TrainingRecipe",
    "check_run_outputs",
    "checkpoint_dict",
    "finetune",
    "make_optimizer",
    "paper_max_lr",
    "prepare_training",
    "load_training_state",
    "restore_training_state",
    "run_finetune",
    "run_identity",
    "save_checkpoint",
    "save_training_state",
    "train_one_epoch",
    "training_state_path",
    "warmup_cosine_lr",
]
