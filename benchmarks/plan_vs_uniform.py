"""Does the latency planner hold its prediction, and does it keep more tokens than a uniform rate?

For each method: ``vitprune plan`` measures the block curves (fresh, not cached) and plans keep counts
for ``--speedup``; then the planned model, the unpruned model and the model at several uniform rates are
exported and timed side by side in ONNX Runtime, interleaved round by round (the machine may be shared).
Reported per method:

* predicted vs measured latency of the plan, raw and with the unpruned latency of the same session as the
  yardstick (prediction × measured unpruned / predicted unpruned: load that changed since the curves were
  measured cancels);
* the uniform rate that reaches the plan's measured latency (linear between the two uniform rates around
  it) and the tokens it keeps in total (sum of the keep counts), against the plan's.

    python benchmarks/plan_vs_uniform.py --methods topk tome --speedup 1.5 --threads 1 --clock cpu \
        --rates 0.05 0.07 0.09 0.11 0.13 --json results/plan_vs_uniform.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

RATES = (0.04, 0.06, 0.08, 0.10, 0.12, 0.14)


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def uniform_tokens(model: str, method: str, rate: float) -> list[int]:
    from vitprune_export.pruning.models import CLI_RANDOM_SEED, create_model
    from vitprune_export.pruning.patch import apply_method, keep_counts

    return keep_counts(apply_method(create_model(model, "random", seed=CLI_RANDOM_SEED), method, rate=rate))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--methods", nargs="+", default=["topk", "tome"])
    parser.add_argument("--speedup", type=float, default=1.5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--statistic", default="median", help="median, or min")
    parser.add_argument("--clock", default="wall", help="wall, or cpu (this thread's CPU time: --threads 1)")
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args()

    from vitprune_export.export.onnx import export_onnx
    from vitprune_export.measure.plan import PlanRequest, plan_schedule, prepare_onnx_file, time_interleaved
    from vitprune_export.pruning.models import CLI_RANDOM_SEED, create_model
    from vitprune_export.pruning.patch import apply_method

    report = {"model": args.model, "speedup": args.speedup, "threads": args.threads, "statistic": args.statistic}
    report["clock"] = args.clock
    report["methods"] = {}
    report["load_before"] = load_average()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="vitprune-plan-bench-") as folder:
        folder = Path(folder)
        for method in args.methods:
            request = PlanRequest(
                model=args.model,
                method=method,
                backend="ort-cpu",
                threads=args.threads,
                speedup=args.speedup,
                iterations=args.iterations,
                rounds=args.rounds,
                statistic=args.statistic,
                clock=args.clock,
                remeasure=True,
                verify=False,
                results_root=folder / "results",
                output=folder / f"{method}_plan.json",
            )
            print(f"[{method}] measuring curves and planning (load {load_average()})", flush=True)
            outcome = plan_schedule(request, say=lambda message: print(f"  {message}", flush=True))
            plan = outcome.plan
            print(f"[{method}] plan {outcome.keep_counts}: predicted {plan.predicted_ms:.2f} ms", flush=True)
            models = {"unpruned": ("none", {}), "planned": (method, {"schedule": plan.removed})}
            models.update({f"r{rate:g}": (method, {"rate": rate}) for rate in args.rates})
            items = {}
            for name, (which, schedule) in models.items():
                print(f"[{method}] exporting {name}", flush=True)
                network = apply_method(create_model(args.model, "random", seed=CLI_RANDOM_SEED), which, **schedule)
                path = export_onnx(network, folder / f"{method}_{name}.onnx", check=False).path
                items[name] = prepare_onnx_file(path, args.threads, args.clock)
            print(f"[{method}] timing {len(items)} models interleaved (load {load_average()})", flush=True)
            medians = time_interleaved(
                items,
                10,
                args.iterations,
                args.rounds,
                lambda message: print(f"  {message}", flush=True),
                args.statistic,
            )
            measured, unpruned = medians["planned"], medians["unpruned"]
            normalised = plan.predicted_ms * unpruned / plan.unpruned_ms
            uniform = sorted((rate, medians[f"r{rate:g}"]) for rate in args.rates)
            match = None
            for (rate_a, ms_a), (rate_b, ms_b) in zip(uniform, uniform[1:]):
                if (ms_a - measured) * (ms_b - measured) <= 0 and ms_a != ms_b:
                    share = (ms_a - measured) / (ms_a - ms_b)
                    tokens_a = sum(uniform_tokens(args.model, method, rate_a))
                    tokens_b = sum(uniform_tokens(args.model, method, rate_b))
                    match = {
                        "rate": rate_a + share * (rate_b - rate_a),
                        "tokens": tokens_a + share * (tokens_b - tokens_a),
                        "between": [rate_a, rate_b],
                    }
                    break
            entry = {
                "keep_counts": outcome.keep_counts,
                "tokens": sum(outcome.keep_counts),
                "predicted_ms": plan.predicted_ms,
                "predicted_unpruned_ms": plan.unpruned_ms,
                "measured_ms": measured,
                "measured_unpruned_ms": unpruned,
                "error_raw": measured / plan.predicted_ms - 1,
                "error_normalised": measured / normalised - 1,
                "measured_speedup": unpruned / measured,
                "uniform_ms": {f"{rate:g}": ms for rate, ms in uniform},
                "uniform_tokens": {f"{rate:g}": sum(uniform_tokens(args.model, method, rate)) for rate in args.rates},
                "uniform_match": match,
                "curves": json.loads(outcome.curves_path.read_text())["curves"],
                "load_after": load_average(),
            }
            report["methods"][method] = entry
            print(json.dumps({k: v for k, v in entry.items() if k != "curves"}, indent=1), flush=True)
    report["seconds"] = round(time.time() - started, 1)
    report["load_after"] = load_average()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\n{'method':8} {'plan tokens':>11} {'pred ms':>8} {'meas ms':>8} {'err':>7} {'err(norm)':>9} "
        f"{'×meas':>6} {'uniform r':>9} {'uniform tokens':>14}"
    )
    for method, entry in report["methods"].items():
        match = entry["uniform_match"] or {"rate": float("nan"), "tokens": float("nan")}
        print(
            f"{method:8} {entry['tokens']:>11} {entry['predicted_ms']:>8.2f} {entry['measured_ms']:>8.2f} "
            f"{entry['error_raw']:>+7.1%} {entry['error_normalised']:>+9.1%} {entry['measured_speedup']:>6.2f} "
            f"{match['rate']:>9.3f} {match['tokens']:>14.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
