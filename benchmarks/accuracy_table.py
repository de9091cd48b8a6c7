"""Accuracy of every registered method on a data set at a few rates, off the shelf (no re-training).

Usage (after 'vitprune finetune' has written the checkpoint):

    python benchmarks/accuracy_table.py --model vitprune_tiny_patch4_32 \
        --checkpoint engines/tiny_digits.pt --data digits --rates 0.1,0.25 \
        --markdown engines/accuracy_table.md --json engines/accuracy_table.json

Each row: method, rate, tokens after the last block, MACs ratio to the unpruned
model, test top-1 (PyTorch, CPU) and the seconds the evaluation took. A method
that fails is listed with its error instead of a number.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path


def measure(
    model_name: str, checkpoint: str, data: str, rates: list[float], methods: list[str], batch: int
) -> list[dict]:
    import torch

    from vitprune_export.accuracy.data import Preprocessing, load_dataset
    from vitprune_export.accuracy.evaluate import evaluate
    from vitprune_export.errors import VitPruneError
    from vitprune_export.pruning.flops import count_macs
    from vitprune_export.pruning.methods import method_class
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import apply_method, keep_counts

    base = create_model(model_name, weights=checkpoint)
    dataset = load_dataset(data, "test", Preprocessing.for_model(base))
    baseline_macs = count_macs(apply_method(copy.deepcopy(base), "none")).macs
    rows = []
    for method in methods:
        method_rates = rates if method_class(method).changes_token_count and method != "none" else [0.0]
        for rate in method_rates:
            started = time.perf_counter()
            row = {"method": method, "rate": rate}
            try:
                torch.manual_seed(0)
                model = apply_method(copy.deepcopy(base), method, rate=rate)
                result = evaluate(model, dataset, batch_size=batch, progress=False)
                row.update(
                    top1=result.top1,
                    images=result.images,
                    keep_counts=keep_counts(model),
                    macs_ratio=count_macs(model).macs / baseline_macs,
                )
            except (VitPruneError, RuntimeError, NotImplementedError) as error:
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            row["seconds"] = round(time.perf_counter() - started, 2)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def markdown(rows: list[dict], dataset: str) -> str:
    lines = [
        f"| method | rate | tokens after last block | MACs ratio | top-1 ({dataset}) | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | {row['rate']:g} | — | — | {row['error']} | {row['seconds']:.1f} |")
            continue
        lines.append(
            f"| {row['method']} | {row['rate']:g} | {row['keep_counts'][-1]} | {row['macs_ratio']:.3f} | "
            f"{row['top1']:.2%} | {row['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitprune_tiny_patch4_32")
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by 'vitprune finetune'")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--rates", default="0.1,0.25")
    parser.add_argument("--methods", default="all", help="comma-separated names, or 'all' (every registered method)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown here")
    parser.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)

    from vitprune_export.files import atomic_write_text
    from vitprune_export.pruning.methods import list_methods

    methods = list_methods() if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    rates = [float(r) for r in args.rates.split(",")]
    started = time.perf_counter()
    rows = measure(args.model, args.checkpoint, args.data, rates, methods, args.batch)
    table = markdown(rows, args.data)
    print(table)
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.markdown:
        atomic_write_text(args.markdown, table)
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
