"""Building a pruned model from CLI options, shared by export, flops, eval and profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import VitPruneError


def resolve_method(method: str, knobs: dict[str, Any]):
    """The method object; an option the method does not have is an error naming the ones it has."""
    from .methods import get_method, method_class

    cls = method_class(method)
    known = {knob.name for knob in cls.knobs}
    unknown = [name for name in knobs if name not in known]
    if unknown:
        flags = ", ".join("--" + name.replace("_", "-") for name in unknown)
        has = ", ".join(knob.flag for knob in cls.knobs) or "none"
        raise VitPruneError(
            f"method {method!r} does not take {flags}; leave it out (its options: {has}; see 'vitprune methods')"
        )
    return get_method(method, **knobs)


def build_pruned_model(
    model: str,
    method: str,
    rate: float | None,
    rates: str | None,
    schedule: Path | None,
    weights: str,
    knobs: dict[str, Any],
):
    """Validate everything cheap first (method, knobs, model name, schedule), then build the model."""
    from .models import CLI_RANDOM_SEED, check_model_name, create_model
    from .patch import apply_method
    from .schedule import check_rate, load_removed_counts, parse_rates

    resolved = resolve_method(method, knobs)
    check_model_name(model)
    if schedule is not None and Path(schedule).is_dir():
        raise VitPruneError(f"--schedule {str(schedule)!r} is a folder; give the JSON file 'vitprune adjust' wrote")
    if schedule is not None and not Path(schedule).is_file():
        raise VitPruneError(
            f"schedule file {str(schedule)!r} does not exist; give the JSON file 'vitprune adjust' wrote"
        )
    if rate is not None:
        check_rate(rate, "--rate")
    for entry in parse_rates(rates) if rates is not None else []:
        check_rate(entry, "every --rates entry")
    if schedule is not None:
        load_removed_counts(schedule)
    network = create_model(model, weights, seed=CLI_RANDOM_SEED)
    return apply_method(network, resolved, rate=rate, rates=rates, schedule=schedule)
