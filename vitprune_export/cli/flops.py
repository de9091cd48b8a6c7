"""``vitprune flops``: analytic multiply-accumulates and parameters of a pruned model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .app import command, console, print_json
from .options import DEFAULT_MODEL_NAME, JsonOption, ModelOption, RateOption, RatesOption, ScheduleOption, with_method_knobs


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
    import copy

    from ..flops import count_macs
    from ..patch import apply_method
    from .spec import build_pruned_model

    network = build_pruned_model(model, method, rate, rates, schedule, "random", knobs or {})
    pruned = count_macs(network)
    baseline = count_macs(apply_method(copy.deepcopy(network), "none"))
    from ..patch import keep_counts

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
    console.print(
        f"{model} / {method}: {data['gmacs']:.3f} GMACs (unpruned {data['baseline_gmacs']:.3f}, "
        f"ratio {data['ratio']:.3f}), {data['params_m']:.2f} M params"
    )
    console.print(f"tokens after each block: {' '.join(map(str, data['keep_counts']))}")
    if method in ("bspf",) or data["ratio"] == 1.0 and method != "none":
        console.print("note: this method keeps every token; its MACs equal the unpruned model's")
