"""What a training run writes: the checkpoint (weights and pruning, read by ``--weights PATH``) and the
training state that ``--resume`` continues from.

Checkpoints hold ``{"model_name", "model_kwargs", "state_dict", "method", "schedule", "epoch",
"accuracy"}``; ``models.create_model(name, weights=PATH)`` and ``--weights PATH`` read them everywhere.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ..errors import VitPruneError
from ..files import atomic_output, check_output
from .recipe import EpochRecord, TrainingRecipe
from .runtime import Processes


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


__all__ = [
    "OLD_TRAINING_STATE_FORMATS",
    "TRAINING_STATE_FORMAT",
    "check_run_outputs",
    "checkpoint_dict",
    "load_training_state",
    "restore_training_state",
    "run_identity",
    "save_checkpoint",
    "save_training_state",
    "training_state_path",
]
