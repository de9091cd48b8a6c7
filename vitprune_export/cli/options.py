"""Option aliases shared by the commands (Polygraphy's names where one exists)."""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..pruning.models import DEFAULT_MODEL

ModelOption = Annotated[str, typer.Option("--model", "-m", help="timm model name.")]
MethodOption = Annotated[str, typer.Option("--method", help="Token-reduction method (see 'vitprune methods').")]
RateOption = Annotated[
    Optional[float], typer.Option("--rate", "-r", help="Share of tokens removed after every block, in [0, 1).")
]
RatesOption = Annotated[
    Optional[str], typer.Option("--rates", help="One rate per block, comma-separated: 0.1,0.1,0.05,…")
]
ScheduleOption = Annotated[
    Optional[Path],
    typer.Option("--schedule", help="JSON file with the tokens removed per block (as 'vitprune adjust' writes)."),
]
WeightsOption = Annotated[
    str,
    typer.Option(
        "--weights", help="auto (pretrained if reachable, else random, loudly), random, or a checkpoint PATH."
    ),
]
BatchOption = Annotated[int, typer.Option("--batch", "-b", min=1, max=4096, help="Batch size.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Replace the output if it exists.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

DEFAULT_MODEL_NAME = DEFAULT_MODEL

# the training commands' options (finetune, adjust; --data also eval)
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


def _knob_parameters() -> list[inspect.Parameter]:
    """One keyword-only CLI option per distinct knob name across all registered methods.

    A name two methods share (``--tau`` of topk-vpa and ppt) gets one option whose help
    names each method with its own meaning and default.
    """
    from ..pruning.methods import list_methods, method_class

    first: dict[str, Any] = {}
    helps: dict[str, list[str]] = {}
    for name in list_methods():
        for knob in method_class(name).knobs:
            first.setdefault(knob.name, knob)
            text = f"[{name}] {knob.help} (default {knob.default})"
            if knob.choices:
                text += f" ({'|'.join(knob.choices)})"
            if not any(text.split("] ", 1)[1] == seen.split("] ", 1)[1] for seen in helps.get(knob.name, [])):
                helps.setdefault(knob.name, []).append(text)
            else:  # same meaning: list the method on the existing line
                index = next(
                    i for i, seen in enumerate(helps[knob.name]) if seen.split("] ", 1)[1] == text.split("] ", 1)[1]
                )
                tag, rest = helps[knob.name][index].split("] ", 1)
                helps[knob.name][index] = f"{tag}, {name}] {rest}"
    parameters = []
    for knob_name, knob in first.items():
        kind = knob.kind if knob.kind in (int, float, str, bool) else str
        help_text = "; ".join(helps[knob_name]).replace("[", "\\[")  # rich markup would eat [method]
        if kind is bool:
            option = typer.Option(knob.flag + "/" + knob.flag.replace("--", "--no-"), help=help_text)
        else:
            option = typer.Option(knob.flag, help=help_text)
        parameters.append(
            inspect.Parameter(
                f"knob__{knob_name}",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[Optional[kind], option],
            )
        )
    return parameters


def with_method_knobs(fn):
    """Add every method knob (``--tau``, ``--score``, …) as an option; pass the ones given as ``knobs=``."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)  # resolve `from __future__ import annotations`
    parameters = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "knobs"
    ]
    extra = _knob_parameters()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        knobs = {key[len("knob__") :]: kwargs.pop(key) for key in list(kwargs) if key.startswith("knob__")}
        knobs = {key: value for key, value in knobs.items() if value is not None}
        return fn(*args, knobs=knobs, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters + extra)
    del wrapper.__wrapped__
    return wrapper


def either(value, alias_value, name: str, alias: str, default):
    """The value of an option given under its name or its older, hidden spelling (not both), else ``default``."""
    if value is not None and alias_value is not None and value != alias_value:
        from ..errors import VitPruneError

        raise VitPruneError(f"{name} and {alias} are the same option; give it once")
    if value is not None:
        return value
    return alias_value if alias_value is not None else default


#: ``with_training_options``: the options that make the recipe and the run settings, as (name, alias, default)
_RECIPE_OPTIONS = (
    ("batch", TrainBatchOption, 16),
    ("lr", LrOption, None),
    ("min_lr", MinLrOption, 1e-6),
    ("warmup_epochs", WarmupOption, None),
    ("weight_decay", WeightDecayOption, 0.05),
    ("seed", SeedOption, 0),
)
_RUN_OPTIONS = (
    ("device", DeviceOption, "auto"),
    ("amp", AmpOption, "off"),
    ("workers", WorkersOption, None),
    ("compile", CompileOption, False),
)


def with_training_options(fn):
    """Give a training command (``finetune``, ``adjust``) its ``job``: put --batch, --lr, --min-lr,
    --warmup-epochs, --weight-decay and --seed where ``fn`` has its ``job`` parameter, and --device, --amp,
    --workers and --compile just before its ``resume``; pass ``job``, the ``TrainingJob`` they make with ``fn``'s
    own --output, --model, --weights, --data, --method, --epochs, the method's knobs, --resume, --force and
    --json (no progress bar, log lines on stderr)."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = []
    for parameter in signature.parameters.values():
        added = {"job": _RECIPE_OPTIONS, "resume": _RUN_OPTIONS}.get(parameter.name, ())
        parameters += [
            inspect.Parameter(name, parameter.kind, default=default, annotation=alias) for name, alias, default in added
        ]
        if parameter.name != "job":
            parameters.append(parameter.replace(annotation=hints.get(parameter.name, parameter.annotation)))

    @functools.wraps(fn)
    def wrapper(**kwargs: Any):
        from ..accuracy.recipe import RunSettings, TrainingRecipe
        from ..accuracy.training import TrainingJob
        from .app import console, err_console

        recipe = {name: kwargs.pop(name) for name, _, _ in _RECIPE_OPTIONS}
        recipe["batch_size"] = recipe.pop("batch")
        job = TrainingJob(
            output=kwargs["output"],
            model=kwargs["model"],
            weights=kwargs["weights"],
            data=kwargs["data"],
            method=kwargs["method"],
            knobs=kwargs["knobs"] or {},
            recipe=TrainingRecipe(epochs=kwargs["epochs"], **recipe),
            run=RunSettings(**{name: kwargs.pop(name) for name, _, _ in _RUN_OPTIONS}),
            resume=kwargs["resume"],
            force=kwargs["force"],
            progress=not kwargs["json"],
            log=err_console.print if kwargs["json"] else console.print,
        )
        return fn(job=job, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters)
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not inspect.Parameter.empty}
    del wrapper.__wrapped__
    return wrapper


def training_command(name: str):
    """Register a training command (``finetune``, ``adjust``): :func:`~.app.command` over
    :func:`with_method_knobs` over :func:`with_training_options`."""
    from .app import command

    return lambda fn: command(name)(with_method_knobs(with_training_options(fn)))
