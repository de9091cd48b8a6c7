"""Option aliases shared by the commands (Polygraphy's names where one exists)."""

from __future__ import annotations

import functools
import inspect
import typing
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..models import DEFAULT_MODEL

ModelOption = Annotated[str, typer.Option("--model", "-m", help="timm model name.")]
MethodOption = Annotated[str, typer.Option("--method", help="Token-reduction method (see 'vitprune methods').")]
RateOption = Annotated[
    Optional[float], typer.Option("--rate", "-r", help="Share of tokens removed after every block, in [0, 1).")
]
RatesOption = Annotated[
    Optional[str], typer.Option("--rates", help="One rate per block, comma-separated: 0.1,0.1,0.05,…")
]
ScheduleOption = Annotated[
    Optional[Path], typer.Option("--schedule", help="JSON file with the tokens removed per block (as 'vitprune adjust' writes).")
]
WeightsOption = Annotated[
    str, typer.Option("--weights", help="auto (pretrained if reachable, else random, loudly), random, or a checkpoint PATH.")
]
BatchOption = Annotated[int, typer.Option("--batch", "-b", min=1, help="Batch size.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]

DEFAULT_MODEL_NAME = DEFAULT_MODEL


def _knob_parameters() -> list[inspect.Parameter]:
    """One keyword-only CLI option per distinct knob name across all registered methods."""
    from ..methods import list_methods, method_class

    seen: dict[str, inspect.Parameter] = {}
    for name in list_methods():
        for knob in method_class(name).knobs:
            if knob.name in seen:
                continue
            kind = knob.kind if knob.kind in (int, float, str, bool) else str
            help_text = f"[{name}] {knob.help}" + (f" ({'|'.join(knob.choices)})" if knob.choices else "")
            if kind is bool:
                option = typer.Option(knob.flag + "/" + knob.flag.replace("--", "--no-"), help=help_text)
            else:
                option = typer.Option(knob.flag, help=help_text)
            seen[knob.name] = inspect.Parameter(
                f"knob__{knob.name}",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[Optional[kind], option],
            )
    return list(seen.values())


def with_method_knobs(fn):
    """Add every method knob (``--tau``, ``--score``, …) as an option; pass the ones given as ``knobs=``."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)  # resolve `from __future__ import annotations`
    parameters = [
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values() if p.name != "knobs"
    ]
    extra = _knob_parameters()

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        knobs = {
            key[len("knob__"):]: kwargs.pop(key)
            for key in list(kwargs)
            if key.startswith("knob__")
        }
        knobs = {key: value for key, value in knobs.items() if value is not None}
        return fn(*args, knobs=knobs, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=parameters + extra)
    del wrapper.__wrapped__
    return wrapper
