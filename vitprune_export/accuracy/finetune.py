"""Pruning-aware fine-tuning: AdamW with a warm-up cosine learning rate.

Ishibashi & Meng 2025, §4.1.1: AdamW, and the learning rate of Eq. 11,

    lr = lr_min + ½ (lr_max − lr_min) (1 + cos(π (T_curr − W) / (T_max − W)))

after a linear warm-up of ``W`` epochs, with ``lr_min = 1e-6`` and
``lr_max = 5e-4 · batch / 512`` (the paper's default here when ``lr`` is not
given; training the tiny ViT from random weights needs a larger one, see
docs/accuracy.md). ``T_curr`` advances per step (fractional epochs), so short
runs get a smooth schedule too.

The model may be patched with any method: the patched forward is trainable
(gradients flow through gather, merge and proportional attention), so the
network learns to work with the tokens it keeps. Checkpoints hold
``{"model_name", "model_kwargs", "state_dict", "method", "schedule", "epoch",
"accuracy"}``; ``models.create_model(name, weights=PATH)`` and ``--weights
PATH`` read them everywhere.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import VitPruneError
from ..files import atomic_output
from .data import ImageDataset, data_loader

PAPER_BATCH_SIZE = 16
PAPER_MIN_LR = 1e-6
PAPER_WARMUP_EPOCHS = 5


def paper_max_lr(batch_size: int) -> float:
    """``lr_max = 5e-4 · batch_size / 512`` (§4.1.1)."""
    return 5e-4 * batch_size / 512


@dataclass(frozen=True)
class TrainingRecipe:
    """Optimiser and schedule settings; ``None`` fields take the paper's values (§4.1.1)."""

    epochs: int
    batch_size: int = PAPER_BATCH_SIZE
    lr: float | None = None
    min_lr: float = PAPER_MIN_LR
    warmup_epochs: float | None = None
    weight_decay: float = 0.05
    seed: int = 0

    @property
    def max_lr(self) -> float:
        return self.lr if self.lr is not None else paper_max_lr(self.batch_size)

    @property
    def warmup(self) -> float:
        """W of Eq. 11: the paper's 5 epochs, but at most a tenth of a short run."""
        if self.warmup_epochs is not None:
            return float(self.warmup_epochs)
        return min(float(PAPER_WARMUP_EPOCHS), 0.1 * self.epochs)

    def validate(self) -> None:
        if self.epochs < 1:
            raise VitPruneError(f"--epochs must be ≥ 1, got {self.epochs}")
        if self.batch_size < 1:
            raise VitPruneError(f"--batch must be ≥ 1, got {self.batch_size}")
        if not (self.max_lr > 0 and math.isfinite(self.max_lr)):
            raise VitPruneError(f"--lr must be a positive number, got {self.lr}")
        if not 0 <= self.warmup < self.epochs:
            raise VitPruneError(
                f"--warmup-epochs must be in [0, --epochs), got {self.warmup:g} for {self.epochs} epochs"
            )


def warmup_cosine_lr(epoch: float, recipe: TrainingRecipe) -> float:
    """Learning rate at (fractional) ``epoch``: linear warm-up to ``lr_max``, then Eq. 11."""
    lr_max, lr_min, warmup = recipe.max_lr, recipe.min_lr, recipe.warmup
    if epoch < warmup:
        return lr_min + (lr_max - lr_min) * epoch / warmup
    progress = (epoch - warmup) / max(recipe.epochs - warmup, 1e-12)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


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
class EpochRecord:
    epoch: int
    train_loss: float
    lr: float
    accuracy: float | None
    seconds: float
    keep_counts: list[int] = field(default_factory=list)


@dataclass
class FinetuneResult:
    history: list[EpochRecord]
    accuracy: float | None
    seconds: float

    @property
    def epochs(self) -> int:
        return len(self.history)


def train_one_epoch(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    recipe: TrainingRecipe,
    epoch: int,
    on_step: Callable[[float], None] | None = None,
) -> float:
    """One pass over ``loader`` (``epoch`` counts from 0); returns the mean training loss."""
    model.train()
    total, count = 0.0, 0
    steps = len(loader)
    for step, (images, labels) in enumerate(loader):
        lr = warmup_cosine_lr(epoch + step / steps, recipe)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(images), labels)
        if not torch.isfinite(loss):
            raise VitPruneError(f"the training loss became {loss.item()} in epoch {epoch + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * labels.shape[0]
        count += labels.shape[0]
        if on_step is not None:
            on_step(float(loss.detach()))
    model.eval()
    return total / max(count, 1)


def finetune(
    model: torch.nn.Module,
    train_set: ImageDataset,
    test_set: ImageDataset | None,
    recipe: TrainingRecipe,
    *,
    progress: bool = True,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    description: str = "fine-tuning",
) -> FinetuneResult:
    """Train ``model`` (patched or not) in place; top-1 on ``test_set`` after every epoch.

    ``on_epoch_end`` sees each :class:`EpochRecord` and may re-patch the model
    (``vitprune adjust`` changes the per-layer rates there; the parameters, and so
    the optimiser's state, are untouched by patching).
    """
    from .evaluate import predict_torch

    recipe.validate()
    torch.manual_seed(recipe.seed)
    optimizer = make_optimizer(model, recipe)
    history: list[EpochRecord] = []
    started = time.perf_counter()
    accuracy = None
    with _progress(progress) as bar:
        task = bar.add_task(
            description,
            total=recipe.epochs * _steps_per_epoch(train_set, recipe.batch_size),
            epoch=f"1/{recipe.epochs}",
            loss=float("nan"),
            acc="—",
        )
        for epoch in range(recipe.epochs):
            epoch_started = time.perf_counter()
            loader = data_loader(train_set, recipe.batch_size, shuffle=True, seed=recipe.seed * 100_003 + epoch)
            loss = train_one_epoch(
                model, loader, optimizer, recipe, epoch, on_step=lambda value: bar.update(task, advance=1, loss=value)
            )
            if test_set is not None:
                predictions, labels = predict_torch(model, test_set, batch_size=256, progress=False)
                accuracy = float((predictions == labels).float().mean())
            record = EpochRecord(
                epoch=epoch + 1,
                train_loss=loss,
                lr=warmup_cosine_lr(epoch + 1, recipe),
                accuracy=accuracy,
                seconds=time.perf_counter() - epoch_started,
                keep_counts=_keep_counts_or_empty(model),
            )
            history.append(record)
            bar.update(task, epoch=f"{epoch + 1}/{recipe.epochs}", acc="—" if accuracy is None else f"{accuracy:.1%}")
            if on_epoch_end is not None:
                on_epoch_end(record)
    return FinetuneResult(history=history, accuracy=accuracy, seconds=time.perf_counter() - started)


def _keep_counts_or_empty(model: torch.nn.Module) -> list[int]:
    """Tokens after each block of a patched model; [] for an unpatched one."""
    from ..pruning.patch import keep_counts

    try:
        return keep_counts(model)
    except VitPruneError:
        return []


def _steps_per_epoch(dataset: ImageDataset, batch_size: int) -> int:
    return math.ceil(len(dataset) / batch_size)


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}[/] epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f} · test top-1 {task.fields[acc]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def prepare_training(
    model: str, weights: str, data: str
) -> tuple[torch.nn.Module, dict[str, Any], ImageDataset, ImageDataset]:
    """The model (head resized to the data set's classes when it is not a checkpoint) and both splits."""
    from ..pruning.models import check_model_name, create_model
    from .data import Preprocessing, load_dataset

    check_model_name(model)
    network = create_model(model, weights)
    preprocessing = Preprocessing.for_model(network)
    train_set = load_dataset(data, "train", preprocessing)
    test_set = load_dataset(data, "test", preprocessing)
    model_kwargs: dict[str, Any] = {}
    if train_set.num_classes != int(network.num_classes):
        if weights not in ("auto", "random"):
            raise VitPruneError(
                f"checkpoint {weights!r} predicts {network.num_classes} classes but {train_set.name} has "
                f"{train_set.num_classes}; fine-tune from --weights auto or random"
            )
        network.reset_classifier(train_set.num_classes)
        model_kwargs["num_classes"] = train_set.num_classes
    return network, model_kwargs, train_set, test_set


def checkpoint_dict(
    model: torch.nn.Module,
    model_name: str,
    model_kwargs: dict[str, Any] | None = None,
    epoch: int | None = None,
    accuracy: float | None = None,
) -> dict[str, Any]:
    """The checkpoint format ``create_model(name, weights=PATH)`` reads (plain types + tensors only)."""
    from ..pruning.patch import pruning_info

    try:
        info = pruning_info(model)
        method = {"name": info["method"].name, "options": info["method"].knob_values()}
        schedule = json.loads(json.dumps(info["schedule"].to_dict()))
    except VitPruneError:
        method, schedule = {"name": "none", "options": {}}, None
    return {
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs or {}),
        "state_dict": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
        "method": method,
        "schedule": schedule,
        "epoch": epoch,
        "accuracy": accuracy,
    }


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` with ``torch.save`` through a temporary file (never half-written)."""
    path = Path(path)
    with atomic_output(path, suffix=".pt") as temporary:
        torch.save(checkpoint, temporary)
    return path


__all__ = [
    "EpochRecord",
    "FinetuneResult",
    "TrainingRecipe",
    "checkpoint_dict",
    "finetune",
    "make_optimizer",
    "paper_max_lr",
    "prepare_training",
    "save_checkpoint",
    "train_one_epoch",
    "warmup_cosine_lr",
]
