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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import VitPruneError
from ..files import atomic_output, check_output
from .data import ImageDataset
from .runtime import Processes

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


# -- training state (resume) ----------------------------------------------------------------
TRAINING_STATE_FORMAT = "vitprune.training-state/2"
#: states of this format hold the recipe but not what the run is (model, method, schedule, data)
OLD_TRAINING_STATE_FORMATS = ("vitprune.training-state/1",)


def training_state_path(output: str | Path) -> Path:
    """Where a run writing ``output`` keeps its training state: the whole name plus ``.state.pt`` beside it
    (``X.pt.state.pt``, ``X.json.state.pt``), so ``finetune -o X.pt`` and ``adjust -o X.json`` never share one."""
    output = Path(output)
    return output.with_name(f"{output.name}.state.pt")


def check_run_outputs(
    output: str | Path, *, resume: bool, force: bool, extra: tuple[tuple[str | Path, str], ...] = ()
) -> Path:
    """Before any work: ``output`` (and each ``(path, option)`` of ``extra``) can be written and is not in the way,
    and a new run does not overwrite the state of an interrupted one. Returns the state's path; writes nothing.

    An existing output needs ``force`` (or ``resume``: the same run goes on and writes it at the end); an
    existing state needs ``resume`` (continue that run) or ``force`` (start again).
    """
    check_output(output, "--output", force=force or resume)
    for path, option in extra:
        check_output(path, option, force=force or resume)
    state = training_state_path(output)
    check_output(state, "--output", force=True)
    if state.exists() and not (resume or force):
        raise VitPruneError(
            f"{str(state)!r} holds the training state of an earlier run writing {str(output)!r}; "
            "pass --resume to continue it or --force to start again"
        )
    return state


def run_identity(**fields: Any) -> dict[str, Any]:
    """What a run is, as plain JSON values (tuples become lists), for the training state and its comparison."""
    return json.loads(json.dumps(fields, sort_keys=True, default=str))


def save_training_state(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    hook: Any,
    history: list[EpochRecord],
    recipe: TrainingRecipe,
    processes: Processes,
    identity: dict[str, Any] | None = None,
) -> Path:
    """Everything an interrupted run needs to go on, in plain types and tensors (loadable with
    ``weights_only=True``), written through a temporary file; ``identity``: :func:`run_identity`."""
    state = {
        "format": TRAINING_STATE_FORMAT,
        "epoch": len(history),
        "recipe": asdict(recipe),
        "run": identity if identity is not None else run_identity(world_size=processes.world_size),
        "world_size": processes.world_size,
        "model": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "hook": hook.state_dict() if hasattr(hook, "state_dict") else None,
        "history": [asdict(record) for record in history],
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        },
    }
    return save_checkpoint(path, state)


def load_training_state(path: str | Path | None) -> dict[str, Any]:
    """Read a training state without running pickled code (``weights_only=True``)."""
    if path is None:
        raise VitPruneError("--resume needs the training state of an earlier run; none was named")
    path = Path(path)
    if not path.is_file():
        raise VitPruneError(
            f"--resume: no training state at {str(path)!r}; run once without --resume (it is written every epoch)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a bad or unsafe file
        raise VitPruneError(
            f"--resume: {str(path)!r} cannot be read as a training state ({type(error).__name__}); "
            "delete it and start again"
        ) from None
    if isinstance(state, dict) and state.get("format") in OLD_TRAINING_STATE_FORMATS:
        raise VitPruneError(
            f"--resume: {str(path)!r} was written by an older vitprune that did not record the run's model, "
            "method and data; start again with --force"
        )
    if not isinstance(state, dict) or state.get("format") != TRAINING_STATE_FORMAT:
        raise VitPruneError(f"--resume: {str(path)!r} is not a vitprune training state; delete it and start again")
    return state


def restore_training_state(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    hook: Any,
    recipe: TrainingRecipe,
    processes: Processes,
    identity: dict[str, Any] | None = None,
) -> list[EpochRecord]:
    """Load ``state`` into the run; returns the finished epochs' history. What the run is (``identity``:
    model, method, schedule, data, number of processes) and the recipe must be the same."""
    identity = identity if identity is not None else run_identity(world_size=processes.world_size)
    saved_run = state.get("run") if isinstance(state.get("run"), dict) else {}
    changed = [
        f"{key} {_shown(saved_run.get(key))} → {_shown(identity.get(key))}"
        for key in sorted(set(saved_run) | set(identity))
        if saved_run.get(key) != identity.get(key)
    ]
    saved = state["recipe"]
    changed += [f"{key} {saved.get(key)} → {value}" for key, value in asdict(recipe).items() if saved.get(key) != value]
    if changed:
        raise VitPruneError(
            f"--resume with other training options than the saved run ({', '.join(changed)}); "
            "give the saved run's options, or start again with --force"
        )
    if int(state["epoch"]) >= recipe.epochs:
        raise VitPruneError(f"--resume: the saved run already finished its {recipe.epochs} epochs")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    if hasattr(hook, "load_state_dict") and state.get("hook") is not None:
        hook.load_state_dict(state["hook"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return [EpochRecord(**record) for record in state["history"]]


def _shown(value: Any) -> str:
    """A saved or given value in an error line: lists as space-separated numbers, None as 'none'."""
    if value is None:
        return "none"
    if isinstance(value, list):
        return " ".join(map(str, value)) or "[]"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items())) or "{}"
    return str(value)


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


def prepare_training(
    model: str, weights: str, data: str, seed: int | None = None
) -> tuple[torch.nn.Module, dict[str, Any], ImageDataset, ImageDataset]:
    """The model (head resized to the data set's classes when it is not a checkpoint) and both splits."""
    from ..pruning.models import check_model_name, create_model
    from .data import Preprocessing, load_dataset

    check_model_name(model)
    network = create_model(model, weights, seed=seed)
    preprocessing = Preprocessing.for_model(network)
    train_set = load_dataset(data, "train", preprocessing, training=True)
    test_set = load_dataset(data, "test", preprocessing)
    model_kwargs: dict[str, Any] = {}
    if train_set.num_classes != int(network.num_classes):
        if weights not in ("auto", "random"):
            raise VitPruneError(
                f"checkpoint {weights!r} predicts {network.num_classes} classes but {train_set.name} has "
                f"{train_set.num_classes}; fine-tune from --weights auto or random"
            )
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            network.reset_classifier(train_set.num_classes)
        model_kwargs["num_classes"] = train_set.num_classes
    return network, model_kwargs, train_set, test_set


def run_finetune(
    output: str | Path,
    *,
    model: str,
    weights: str,
    data: str,
    method: str,
    knobs: dict[str, Any],
    rate: float | None,
    rates: str | None,
    schedule: str | Path | None,
    recipe: TrainingRecipe,
    run: RunSettings = RunSettings(),
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    """``vitprune finetune``: load, patch, train (one process or torchrun's), write the checkpoint.

    The training state goes to :func:`training_state_path` of ``output`` after every epoch. ``output`` is
    checked before any work (:func:`check_run_outputs`): an existing one needs ``force``, an interrupted
    run's state ``resume`` or ``force``. Returns the summary on the main process, None on the others.
    """
    from ..pruning.patch import apply_method, keep_counts
    from ..pruning.spec import resolve_method
    from .runtime import processes as open_processes

    started = time.perf_counter()
    recipe.validate()
    resolved = resolve_method(method, knobs)
    state_path = check_run_outputs(output, resume=resume, force=force)
    with open_processes(run.device) as (group, device):
        torch.manual_seed(recipe.seed)
        network, model_kwargs, train_set, test_set = prepare_training(model, weights, data, seed=recipe.seed)
        apply_method(network, resolved, rate=rate, rates=rates, schedule=schedule)
        identity = {
            "command": "finetune",
            "model": model,
            "weights": str(weights),
            "data": data,
            "method": resolved.name,
            "method_options": resolved.knob_values(),
            "keep_counts": _keep_counts_or_empty(network),
        }
        if log is not None and group.is_main:
            log(
                f"{model} / {method}, tokens after each block: {' '.join(map(str, keep_counts(network)))}; "
                f"{len(train_set)} training and {len(test_set)} test images ({train_set.num_classes} classes); "
                f"lr {recipe.max_lr:.3g}, warm-up {recipe.warmup:g} epochs; {device}, amp {run.amp}, "
                f"{group.world_size} process(es), global batch {recipe.batch_size}"
            )
        result = finetune(
            network,
            train_set,
            test_set,
            recipe,
            run=run,
            processes=group,
            device=device,
            progress=progress,
            log=log,
            state_path=state_path,
            resume=resume,
            identity=identity,
        )
        if group.is_main:
            save_checkpoint(
                output, checkpoint_dict(network, model, model_kwargs, epoch=result.epochs, accuracy=result.accuracy)
            )
        group.barrier()
        if not group.is_main:
            return None
        return {
            "checkpoint": str(output),
            "training_state": str(state_path),
            "model": model,
            "method": method,
            "keep_counts": keep_counts(network),
            "epochs": result.epochs,
            "test_top1": result.accuracy,
            "test_data": test_set.name,
            "train_loss": [round(r.train_loss, 4) for r in result.history],
            "images_per_second": [round(r.images_per_second, 1) for r in result.history],
            "world_size": result.world_size,
            "global_batch": result.global_batch,
            "device": result.device,
            "amp": run.amp,
            "seconds": time.perf_counter() - started,
        }


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
    "RunSettings",
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
