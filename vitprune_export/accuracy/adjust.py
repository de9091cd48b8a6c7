"""Automatic per-layer pruning-rate adjustment during fine-tuning (GAS).

Ishibashi & Meng, *Automatic pruning rate adjustment for dynamic token reduction
in vision transformer*, Applied Intelligence 2025, §3.3, Algorithm 2:

* **Cyclic layer order** (§3.3.1, Alg. 2 line 4): the layer being adjusted
  changes at the epochs ``C = {⌊T/(mL)⌋ · i | i = 1 … mL}`` (``T`` epochs,
  ``L`` layers, ``m`` layer loops), in the order 1 → 2 → … → L → 1 → …; at each
  switch the list of training losses is emptied (line 7).
* **Loss-driven step Φ** (§3.3.2, Eq. 6): every ``n`` epochs the mean of the
  stored losses ``𝓛_current`` is compared with the previous one:
  ``Φ(𝓛₁, 𝓛₂) = Δr_max (2 / (1 + e^{−α(𝓛₁ − 𝓛₂)}) − 1)``, in ``[−Δr_max, Δr_max]``:
  a falling loss raises the rate, a rising one lowers it.
* **Gradient-aware scaling** (§3.3.3, Eq. 7–10): on one batch sampled from the
  training data, the gradients ``G(r)`` of the loss with respect to the MLP
  weights of the layer (Eq. 7) are taken at the current rate and at the
  tentative rate ``r_temp = r_curr + Φ`` (Eq. 8);
  ``R = Sigmoid(−Σ (G(r_curr) − G(r_temp))²)`` (Eq. 9) and
  ``r_new = r_curr + R · Φ`` (Eq. 10): a layer whose gradients react strongly
  to the change moves less.

Its output is a static per-layer schedule (removed token counts, with the rates
and their curve per epoch) that ``vitprune export --schedule`` bakes into the
graph. Where the paper leaves a detail open, the choice made here is stated in
the docstring of the function that makes it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import VitPruneError
from ..pruning.methods import TokenReduction
from ..pruning.schedule import Schedule, build_schedule, save_schedule
from .data import ImageDataset
from .finetune import finetune
from .recipe import EpochRecord, RunSettings, TrainingRecipe
from .runtime import Processes
from .training import TrainingJob, TrainingSession, run_training

ADJUSTABLE_METHODS = ("topk", "topk-vpa", "evit", "etps", "tome")


# -- the equations (pure) -----------------------------------------------------------------
def phi(loss_previous: float, loss_current: float, max_step: float = 0.05, alpha: float = 10.0) -> float:
    """Eq. 6: ``Δr_max (2 / (1 + exp(−α(𝓛₁ − 𝓛₂))) − 1)``, bounded by ``±Δr_max``.

    Computed as ``Δr_max · tanh(α(𝓛₁ − 𝓛₂) / 2)``, the same function without
    overflow for large loss changes.
    """
    return max_step * math.tanh(alpha * (loss_previous - loss_current) / 2.0)


def gradient_change(gradients_current: Sequence[torch.Tensor], gradients_temp: Sequence[torch.Tensor]) -> float:
    """``Σ_{w_i ∈ W^l} (G(r_curr) − G(r_temp))²`` of Eq. 9, summed over every MLP weight."""
    if len(gradients_current) != len(gradients_temp):
        raise ValueError("both gradient sets must hold the same weights")
    return float(sum(((a.double() - b.double()) ** 2).sum() for a, b in zip(gradients_current, gradients_temp)))


def gas_scale(gradients_current: Sequence[torch.Tensor], gradients_temp: Sequence[torch.Tensor]) -> float:
    """Eq. 9: ``R = Sigmoid(−Σ (G(r_curr) − G(r_temp))²)``, in (0, ½]; smaller for a larger change."""
    change = gradient_change(gradients_current, gradients_temp)
    return 1.0 / (1.0 + math.exp(min(change, 700.0)))


def gas_update(rate_current: float, step: float, scale: float) -> float:
    """Eq. 10: ``r_new = r_curr + R · Φ``."""
    return rate_current + scale * step


def switch_epochs(epochs: int, depth: int, layer_loops: int) -> list[int]:
    """Alg. 2 line 4: ``C = {⌊T/(mL)⌋ · i | i = 1 … mL}``, the epochs where the adjusted layer changes.

    When ``T < mL`` the paper's interval ``⌊T/(mL)⌋`` is 0; it is taken as 1 (a
    new layer every epoch) and switches after epoch ``T`` are dropped.
    """
    interval = max(1, epochs // (layer_loops * depth))
    return [interval * i for i in range(1, layer_loops * depth + 1) if interval * i <= epochs]


def removed_for_rates(num_tokens: int, num_prefix: int, rates: Sequence[float], method: TokenReduction) -> list[int]:
    """Per-layer rates → removed counts ``m_l = ⌊r_l · N_l⌋`` (Alg. 1 line 8), capped as the method requires
    and never leaving fewer than one patch token."""
    removed, tokens = [], num_tokens
    for rate in rates:
        count = method.cap_remove(tokens, num_prefix, math.floor(rate * tokens)) if method.changes_token_count else 0
        count = max(0, min(count, method.max_remove(tokens, num_prefix)))
        removed.append(count)
        tokens -= count
    return removed


def check_adjustable(method: TokenReduction) -> None:
    """Algorithm 2 tunes a manual rate: the methods of §4.1.4 that take one."""
    if method.name not in ADJUSTABLE_METHODS:
        raise VitPruneError(
            f"adjust works with the methods that take a manual rate: {', '.join(ADJUSTABLE_METHODS)}; not {method.name!r}"
        )


# -- the loop ------------------------------------------------------------------------------
@dataclass(frozen=True)
class AdjustSettings:
    """Algorithm 2's inputs: ``m`` = ``layer_loops``, ``n`` = ``update_every``, ``Δr_max`` = ``max_step``, α.

    ``initial_rate``: every layer's rate before adjustment (the paper starts
    from 5 % on CIFAR-10, 10 % elsewhere, §4.1.4). ``max_rate`` bounds each
    layer's rate (not in the paper; it keeps the schedule valid).
    ``sample_batch``: images in the GAS sample ``𝒟_s`` (one training batch, §4.1.1).
    """

    initial_rate: float = 0.1
    layer_loops: int = 8
    update_every: int = 2
    max_step: float = 0.05
    alpha: float = 10.0
    max_rate: float = 0.5
    sample_batch: int | None = None

    def validate(self) -> None:
        if self.layer_loops < 1:
            raise VitPruneError(f"--layer-loops must be ≥ 1, got {self.layer_loops}")
        if self.update_every < 1:
            raise VitPruneError(f"--update-every must be ≥ 1, got {self.update_every}")
        if not 0 < self.max_step < 1:
            raise VitPruneError(f"--max-step must be in (0, 1), got {self.max_step}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise VitPruneError(f"--alpha must be a positive number, got {self.alpha}")
        if not 0 < self.max_rate < 1:
            raise VitPruneError(f"--max-rate must be in (0, 1), got {self.max_rate}")
        if not 0 <= self.initial_rate <= self.max_rate:
            raise VitPruneError(
                f"--rate (the initial rate) must be in [0, --max-rate={self.max_rate}], got {self.initial_rate}"
            )


@dataclass
class RateUpdate:
    """One application of Eq. 6–10 to one layer."""

    epoch: int
    layer: int
    loss_previous: float
    loss_current: float
    step: float  # Φ, Eq. 6
    gradient_change: float  # Σ (G(r_curr) − G(r_temp))², Eq. 9
    scale: float  # R, Eq. 9
    rate_before: float
    rate_after: float


@dataclass
class AdjustResult:
    schedule: Schedule
    rates: list[float]
    curve: list[list[float]]
    updates: list[RateUpdate]
    history: list[EpochRecord]
    accuracy: float | None
    seconds: float
    settings: AdjustSettings
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields written next to the schedule (``removed``, ``tokens_in``, …) in the schedule JSON."""
        return {
            "rates": self.rates,
            "curve": self.curve,
            "updates": [asdict(update) for update in self.updates],
            "train_loss": [record.train_loss for record in self.history],
            "test_top1": [record.accuracy for record in self.history],
            "accuracy": self.accuracy,
            "seconds": round(self.seconds, 2),
            "settings": asdict(self.settings),
            **self.extra,
        }


def mlp_gradients(
    model: torch.nn.Module,
    layer: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    processes: Processes = Processes(),
    total: int | None = None,
) -> list[torch.Tensor]:
    """Eq. 7: ``G(r^l)``, the loss gradients w.r.t. the MLP weights of block ``layer`` on ``𝒟_s``.

    The pruning itself is not differentiable in ``r``; the MLP after it stands
    in for the layer (§3.3.3). Eval mode, so dropout and drop-path do not add noise.
    Under torchrun each process holds a share of ``𝒟_s`` (``total`` images in all):
    the summed losses' gradients are added over the processes and divided by
    ``total``, so every process gets the gradient of the mean loss over all of ``𝒟_s``.
    """
    was_training = model.training
    model.eval()
    weights = [p for p in model.blocks[layer].mlp.parameters() if p.requires_grad]
    device = weights[0].device
    with torch.enable_grad():
        loss = F.cross_entropy(model(images.to(device)), labels.to(device), reduction="sum")
        gradients = torch.autograd.grad(loss, weights)
    model.train(was_training)
    gradients = processes.sum_tensors([g.detach() for g in gradients])
    return [g / (total or labels.shape[0]) for g in gradients]


class RateAdjuster:
    """Algorithm 2 as an epoch-end hook of :func:`~vitprune_export.accuracy.finetune.finetune`."""

    def __init__(
        self,
        model: torch.nn.Module,
        method: TokenReduction,
        train_set: ImageDataset,
        epochs: int,
        settings: AdjustSettings,
        sample_batch: int,
        seed: int = 0,
        processes: Processes | None = None,
    ):
        from ..pruning.patch import num_tokens_of

        self.model, self.method, self.train_set, self.settings = model, method, train_set, settings
        self.processes = processes or Processes.current()
        self.depth = len(model.blocks)
        self.num_tokens, self.num_prefix = num_tokens_of(model), int(model.num_prefix_tokens)
        self.rates = [float(settings.initial_rate)] * self.depth
        self.switches = set(switch_epochs(epochs, self.depth, settings.layer_loops))
        self.layer: int | None = None
        self.losses: list[float] = []
        self.loss_previous: float | None = None
        self.curve: list[list[float]] = []
        self.updates: list[RateUpdate] = []
        self.sample_size = min(sample_batch, len(train_set))
        self.generator = torch.Generator().manual_seed(seed + 7919)
        self.apply(self.rates)

    def apply(self, rates: Sequence[float]) -> None:
        """Re-patch the model with per-layer ``rates`` (parameters and optimiser state untouched)."""
        from ..pruning.patch import apply_method

        removed = removed_for_rates(self.num_tokens, self.num_prefix, rates, self.method)
        apply_method(self.model, self.method, schedule=removed)

    def sample(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``𝒟_s = Sampling(𝒟)`` (Alg. 2 line 17): one random batch of the training data.

        Every process draws the same batch (the generator is seeded alike) and keeps its share of it.
        """
        chosen = torch.randperm(len(self.train_set), generator=self.generator)[: self.sample_size]
        share = chosen.tensor_split(self.processes.world_size)[self.processes.rank].tolist()
        images, labels = zip(*(self.train_set[i] for i in share))
        return torch.stack(images), torch.tensor(labels)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to take the same decisions (plain types and one tensor)."""
        return {
            "rates": list(self.rates),
            "layer": self.layer,
            "losses": list(self.losses),
            "loss_previous": self.loss_previous,
            "curve": [list(rates) for rates in self.curve],
            "updates": [asdict(update) for update in self.updates],
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rates = [float(rate) for rate in state["rates"]]
        self.layer = state["layer"]
        self.losses = list(state["losses"])
        self.loss_previous = state["loss_previous"]
        self.curve = [list(rates) for rates in state["curve"]]
        self.updates = [RateUpdate(**update) for update in state["updates"]]
        self.generator.set_state(state["generator"])
        self.apply(self.rates)

    def __call__(self, record: EpochRecord) -> None:
        epoch = record.epoch
        if epoch in self.switches:  # lines 6–10
            self.losses = []
            self.layer = 0 if self.layer is None else (self.layer + 1) % self.depth
        self.losses.append(record.train_loss)  # lines 12–13
        if self.layer is not None and epoch % self.settings.update_every == 0:  # line 14
            loss_current = sum(self.losses) / len(self.losses)  # line 15
            if self.loss_previous is not None:  # the first average only sets 𝓛_previous
                self.update_layer(epoch, self.layer, self.loss_previous, loss_current)  # lines 16–19
            self.loss_previous = loss_current  # line 20
        self.curve.append(list(self.rates))

    def update_layer(self, epoch: int, layer: int, loss_previous: float, loss_current: float) -> None:
        """Eq. 6–10 for one layer; the new rate is clipped to ``[0, max_rate]``."""
        settings = self.settings
        step = phi(loss_previous, loss_current, settings.max_step, settings.alpha)
        rate_current = self.rates[layer]
        images, labels = self.sample()
        total = self.sample_size
        gradients_current = mlp_gradients(self.model, layer, images, labels, self.processes, total)
        tentative = list(self.rates)
        tentative[layer] = _clip(rate_current + step, settings.max_rate)  # Eq. 8
        self.apply(tentative)
        gradients_temp = mlp_gradients(self.model, layer, images, labels, self.processes, total)
        change = gradient_change(gradients_current, gradients_temp)
        scale = gas_scale(gradients_current, gradients_temp)  # Eq. 9
        self.rates[layer] = _clip(gas_update(rate_current, step, scale), settings.max_rate)  # Eq. 10
        self.apply(self.rates)
        self.updates.append(
            RateUpdate(epoch, layer, loss_previous, loss_current, step, change, scale, rate_current, self.rates[layer])
        )

    def schedule(self) -> Schedule:
        removed = removed_for_rates(self.num_tokens, self.num_prefix, self.rates, self.method)
        return build_schedule(self.num_tokens, self.num_prefix, self.depth, removed=removed, method=self.method)


def _clip(rate: float, max_rate: float) -> float:
    return min(max(rate, 0.0), max_rate)


def adjust_rates(
    model: torch.nn.Module,
    method: TokenReduction,
    train_set: ImageDataset,
    test_set: ImageDataset | None,
    recipe: TrainingRecipe,
    settings: AdjustSettings = AdjustSettings(),
    *,
    run: RunSettings = RunSettings(),
    processes: Processes | None = None,
    device: torch.device | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    state_path: str | Path | None = None,
    resume: bool = False,
    identity: dict[str, Any] | None = None,
) -> AdjustResult:
    """Fine-tune ``model`` for ``recipe.epochs`` while Algorithm 2 adjusts each layer's rate.

    The model is patched with ``method`` at ``settings.initial_rate`` first and
    re-patched whenever a rate changes; it ends patched with the final schedule.
    Under torchrun every process takes the same decisions: the epoch losses and
    the GAS gradients are summed over the processes before Eq. 6–10 read them. ``state_path``,
    ``resume`` and ``identity``: as :func:`~vitprune_export.accuracy.finetune.finetune`, with ``settings``
    part of what the run is.
    """
    from .evaluate import top1_on

    check_adjustable(method)
    settings.validate()
    recipe.validate()
    processes = processes or Processes.current()
    adjuster = RateAdjuster(
        model,
        method,
        train_set,
        recipe.epochs,
        settings,
        settings.sample_batch or recipe.batch_size,
        seed=recipe.seed,
        processes=processes,
    )
    started = time.perf_counter()
    trained = finetune(
        model,
        train_set,
        test_set,
        recipe,
        run=run,
        processes=processes,
        device=device,
        progress=progress,
        on_epoch_end=adjuster,
        log=log,
        description="adjusting",
        state_path=state_path,
        resume=resume,
        identity={**(identity or {}), "adjust": asdict(settings)},
    )
    accuracy = trained.accuracy
    if test_set is not None:  # the last update may have changed the schedule after the last evaluation
        accuracy = top1_on(model, test_set, batch_size=run.eval_batch, processes=processes, amp=run.amp)
    return AdjustResult(
        schedule=adjuster.schedule(),
        rates=list(adjuster.rates),
        curve=adjuster.curve,
        updates=adjuster.updates,
        history=trained.history,
        accuracy=accuracy,
        seconds=time.perf_counter() - started,
        settings=settings,
        extra={"world_size": trained.world_size, "global_batch": trained.global_batch},
    )


def run_adjust(
    job: TrainingJob, settings: AdjustSettings, *, checkpoint: str | Path | None = None
) -> dict[str, Any] | None:
    """``vitprune adjust``: load, adjust while fine-tuning (one process or torchrun's), write the schedule to
    ``job.output`` (and the weights when ``checkpoint`` is given). Returns the summary on the main process,
    None elsewhere.

    The outputs are checked before any work, as ``vitprune finetune``'s
    (:func:`~vitprune_export.accuracy.checkpoints.check_run_outputs`); the training state is ``OUTPUT.state.pt``."""
    from ..pruning.spec import resolve_method
    from .checkpoints import checkpoint_dict, save_checkpoint

    model, method, recipe = job.model, job.method, job.recipe
    recipe.validate()
    settings.validate()
    resolved = resolve_method(method, job.knobs)
    check_adjustable(resolved)

    def train(session: TrainingSession) -> AdjustResult:
        return adjust_rates(
            session.network,
            resolved,
            session.train_set,
            session.test_set,
            recipe,
            settings,
            run=job.run,
            processes=session.processes,
            device=session.device,
            progress=job.progress,
            log=job.log,
            state_path=session.state_path,
            resume=job.resume,
            identity=session.identity,
        )

    def save(session: TrainingSession, result: AdjustResult) -> None:
        save_adjusted_schedule(
            job.output,
            result,
            model=model,
            method=method,
            method_options=resolved.knob_values(),
            data=job.data,
            weights=str(job.weights),
            epochs=recipe.epochs,
            created_by="vitprune adjust",
        )
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                checkpoint_dict(
                    session.network, model, session.model_kwargs, epoch=recipe.epochs, accuracy=result.accuracy
                ),
            )

    def summary(session: TrainingSession, result: AdjustResult) -> dict[str, Any]:
        return {
            "removed": list(result.schedule.removed),
            "keep_counts": list(result.schedule.tokens_out),
            "rates": result.rates,
            "updates": len(result.updates),
            "test_top1": result.accuracy,
            "checkpoint": str(checkpoint) if checkpoint else None,
        }

    extra = ((checkpoint, "--save-checkpoint"),) if checkpoint is not None else ()
    return run_training(job, "adjust", resolved, train, save, summary, output_key="schedule", extra_outputs=extra)


def save_adjusted_schedule(path: str | Path, result: AdjustResult, **extra: Any) -> Path:
    """Write the schedule JSON ``export --schedule`` reads: ``removed``, ``tokens_in``, ``rates``, ``curve``, …"""
    path = Path(path)
    save_schedule(path, result.schedule, **{**result.to_json(), **extra})
    return path


__all__ = [
    "ADJUSTABLE_METHODS",
    "AdjustResult",
    "check_adjustable",
    "AdjustSettings",
    "RateAdjuster",
    "RateUpdate",
    "adjust_rates",
    "gas_scale",
    "gas_update",
    "gradient_change",
    "mlp_gradients",
    "phi",
    "removed_for_rates",
    "run_adjust",
    "save_adjusted_schedule",
    "switch_epochs",
]
