"""``vitprune flops``: analytic multiply-accumulates and parameters of a pruned model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .app import command, console, print_json
from .options import (
    DEFAULT_MODEL_NAME,
    JsonOption,
    ModelOption,
    RateOption,
    RatesOption,
    ScheduleOption,
    with_method_knobs,
)


@command("flops")
@with_method_knobs
def flops(
    method: Annotated[str, typer.Option("--method", help="Token-reduction method.")] = "none",
    model: ModelOption = DEFAULT_MODEL_NAME,
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Multiply-accumulates (G) and parameters (M) of the pruned model, and the ratio to the unpruned one."""
    from ..pruning.flops import count_macs
    from ..pruning.patch import keep_counts
    from ..pruning.spec import build_pruned_model, resolve_method

    network = build_pruned_model(model, method, rate, rates, schedule, "random", knobs or {})
    pruned = count_macs(network)
    baseline = count_macs(network, unpruned=True)

    data = {
        "model": model,
        "method": method,
        "gmacs": pruned.gmacs,
        "baseline_gmacs": baseline.gmacs,
        "ratio": pruned.macs / baseline.macs,
        "params_m": pruned.params / 1e6,
        "keep_counts": keep_counts(network),
    }
    if json:
        print_json(data)
        return
    console.print(f"{model} / {method}")
    console.print(
        f"{data['gmacs']:.3f} GMACs (unpruned {data['baseline_gmacs']:.3f}, ratio {data['ratio']:.3f}), "
        f"{data['params_m']:.2f} M params"
    )
    console.print(f"tokens after each block: {' '.join(map(str, data['keep_counts']))}")
    if not resolve_method(method, knobs or {}).changes_token_count and method != "none":
        console.print(f"note: {method} keeps every token; its MACs equal the unpruned model's")
