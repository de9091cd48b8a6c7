"""What a training run is set to do: the recipe, where it runs, and what each epoch leaves behind.

Ishibashi & Meng 2025, §4.1.1: AdamW, and the learning rate of Eq. 11,

    lr = lr_min + ½ (lr_max − lr_min) (1 + cos(π (T_curr − W) / (T_max − W)))

after a linear warm-up of ``W`` epochs, with ``lr_min = 1e-6`` and
``lr_max = 5e-4 · batch / 512`` (the paper's default here when ``lr`` is not
given). ``T_curr`` advances per step (fractional epochs), so short runs get a
smooth schedule too. Plain values only: no torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import VitPruneError

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


@dataclass(frozen=True)
class RunSettings:
    """Where and how fast a run trains: ``device`` (auto | cpu | cuda | cuda:N), ``amp`` (off | bf16 |
    fp16), loader ``workers`` (None: :func:`~vitprune_export.accuracy.runtime.default_workers`),
    ``compile`` (:func:`torch.compile` the training forward) and the evaluation batch."""

    device: str = "auto"
    amp: str = "off"
    workers: int | None = None
    compile: bool = False
    eval_batch: int = 256


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    lr: float
    accuracy: float | None
    seconds: float
    keep_counts: list[int] = field(default_factory=list)
    images_per_second: float = 0.0

    def line(self, epochs: int) -> str:
        """One log line: ``epoch 3/24 · loss 0.5120 · lr 1.20e-03 · test top-1 91.25% · 412 img/s · 3.5 s``."""
        accuracy = "–" if self.accuracy is None else f"{self.accuracy:.2%}"
        return (
            f"epoch {self.epoch}/{epochs} · loss {self.train_loss:.4f} · lr {self.lr:.2e} · test top-1 {accuracy}"
            f" · {self.images_per_second:,.0f} img/s · {self.seconds:.1f} s"
        )


__all__ = [
    "PAPER_BATCH_SIZE",
    "PAPER_MIN_LR",
    "PAPER_WARMUP_EPOCHS",
    "EpochRecord",
    "RunSettings",
    "TrainingRecipe",
    "paper_max_lr",
    "warmup_cosine_lr",
]
