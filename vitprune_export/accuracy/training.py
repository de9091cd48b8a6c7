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
    output: str | Path,
    *,
    command: str,
    output_key: str,
    model: str,
    weights: str,
    data: str,
    method: TokenReduction,
    recipe: TrainingRecipe,
    run: RunSettings,
    resume: bool,
    force: bool,
    train: Callable[[TrainingSession], Trained],
    save: Callable[[TrainingSession, Trained], None],
    summary: Callable[[TrainingSession, Trained], dict[str, Any]],
    extra_outputs: tuple[tuple[str | Path, str], ...] = (),
) -> dict[str, Any] | None:
    """Check ``output`` (and ``extra_outputs``: ``(path, option)`` pairs) before any work, then in the open
    processes: seed with ``recipe.seed``, :func:`prepare_training`, ``train``, ``save`` on the main process,
    wait for all. Returns ``{output_key: output, "training_state": …, **summary, "world_size", "global_batch",
    "device", "amp", "seconds"}`` on the main process, None on the others."""
    from .runtime import processes as open_processes

    started = time.perf_counter()
    state_path = check_run_outputs(output, resume=resume, force=force, extra=extra_outputs)
    identity = {
        "command": command,
        "model": model,
        "weights": str(weights),
        "data": data,
        "method": method.name,
        "method_options": method.knob_values(),
    }
    with open_processes(run.device) as (group, device):
        torch.manual_seed(recipe.seed)
        network, model_kwargs, train_set, test_set = prepare_training(model, weights, data, seed=recipe.seed)
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
            "amp": run.amp,
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


__all__ = ["TrainingSession", "prepare_training", "run_training"]
