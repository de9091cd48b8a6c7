"""The one skeleton of a training command (``vitprune finetune``, ``vitprune adjust``).

Both take the same steps around their own training: check the outputs before any work, open the processes
(one, or torchrun's), seed, load the model and both splits, train, write the outputs on the main process,
wait for every process, and return the summary on the main process only. Each command gives its training,
its writing and its own summary fields; the rest is here, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from ..errors import VitPruneError
from ..pruning.methods import TokenReduction
from .checkpoints import check_run_outputs
from .data import ImageDataset
from .recipe import RunSettings, TrainingRecipe
from .runtime import Processes

Trained = TypeVar("Trained")


@dataclass(frozen=True)
class TrainingJob:
    """What a training command is asked: write ``output``, training ``model`` (from ``weights``) on ``data``,
    pruned with ``method`` and its ``knobs``, under ``recipe`` on ``run``; ``resume``/``force`` as
    :func:`~vitprune_export.accuracy.checkpoints.check_run_outputs` reads them; ``progress`` shows a bar and
    ``log`` gets the run's lines (on the main process)."""

    output: Path
    model: str
    weights: str
    data: str
    method: str
    knobs: dict[str, Any]
    recipe: TrainingRecipe
    run: RunSettings = RunSettings()
    resume: bool = False
    force: bool = False
    progress: bool = True
    log: Callable[[str], None] | None = None


@dataclass(frozen=True)
class TrainingSession:
    """What a command's own steps work with: the processes and device, the prepared model (``model_kwargs``:
    what its checkpoint must record to be built again) and data, where the training state goes, and what the
    run is (``identity``: compared field by field on ``--resume``)."""

    processes: Processes
    device: torch.device
    network: torch.nn.Module
    model_kwargs: dict[str, Any]
    train_set: ImageDataset
    test_set: ImageDataset
    state_path: Path
    identity: dict[str, Any]


def run_training(
    job: TrainingJob,
    command: str,
    method: TokenReduction,
    train: Callable[[TrainingSession], Trained],
    save: Callable[[TrainingSession, Trained], None],
    summary: Callable[[TrainingSession, Trained], dict[str, Any]],
    *,
    output_key: str,
    extra_outputs: tuple[tuple[str | Path, str], ...] = (),
) -> dict[str, Any] | None:
    """``vitprune COMMAND`` of ``job`` with ``method`` (``job.method`` resolved): check ``job.output`` (and
    ``extra_outputs``: ``(path, option)`` pairs) before any work, then in the open processes: seed with the
    recipe's seed, :func:`prepare_training`, ``train``, ``save`` on the main process, wait for all. Returns
    ``{output_key: output, "training_state": …, **summary, "world_size", "global_batch", "device", "amp",
    "seconds"}`` on the main process, None on the others."""
    from .runtime import processes as open_processes

    started = time.perf_counter()
    output, recipe = job.output, job.recipe
    state_path = check_run_outputs(output, resume=job.resume, force=job.force, extra=extra_outputs)
    identity = {
        "command": command,
        "model": job.model,
        "weights": str(job.weights),
        "data": job.data,
        "method": method.name,
        "method_options": method.knob_values(),
    }
    with open_processes(job.run.device) as (group, device):
        torch.manual_seed(recipe.seed)
        network, model_kwargs, train_set, test_set = prepare_training(
            job.model, job.weights, job.data, seed=recipe.seed
        )
        session = TrainingSession(group, device, network, model_kwargs, train_set, test_set, state_path, identity)
        trained = train(session)
        if group.is_main:
            save(session, trained)
        group.barrier()
        if not group.is_main:
            return None
        return {
            output_key: str(output),
            "training_state": str(state_path),
            **summary(session, trained),
            "world_size": group.world_size,
            "global_batch": recipe.batch_size,
            "device": str(device),
            "amp": job.run.amp,
            "seconds": time.perf_counter() - started,
        }


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


__all__ = ["TrainingJob", "TrainingSession", "prepare_training", "run_training"]
