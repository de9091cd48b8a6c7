"""Latency reduction over FLOPs reduction, per cell, from the results ``vitprune bench`` wrote.

For every pruned result with a ``noise`` record (the paired rounds against the
unpruned model on the same backend, batch and threads)::

    ratio = (latency reduction) / (FLOPs reduction)
          = (−delta_pct / 100) / (1 − macs / baseline_macs)

``±`` is half the inter-quartile range of the paired changes, divided by the FLOPs
reduction; ``noisy`` when that spread is wider than the change. Prints a
Markdown table (rows: method; columns: backend × precision × threads × batch × model; ``--by-cell``
turns it round)::

    python benchmarks/bench_ratios.py results/ [--by-cell]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def ratio_rows(results: list[dict]) -> tuple[list[str], dict[str, dict[str, str]], dict[str, float]]:
    """(column labels, method → column → "0.93 ±0.04", column → baseline median ms)."""
    columns: dict[str, None] = {}
    table: dict[str, dict[str, str]] = {}
    baselines: dict[str, float] = {}
    for result in sorted(results, key=lambda r: (r["model"], r["backend"], r["batch"], r.get("threads") or 0)):
        precision = result.get("precision") or "fp32"
        label = f"{result['backend']} {'' if precision == 'fp32' else precision + ' '}{result.get('threads') or 'auto'}t b{result['batch']} {result['model']}"
        if result["method"] == "none":
            baselines[label] = result["latency_ms"]["median"]
            columns.setdefault(label)
            continue
        noise = result.get("noise")
        if not noise or not result.get("macs") or not result.get("baseline_macs"):
            continue
        columns.setdefault(label)
        flops = 1 - result["macs"] / result["baseline_macs"]
        ratio = -noise["delta_pct"] / 100 / flops
        spread = noise["spread_pct"] / 200 / flops
        table.setdefault(result["method"], {})[label] = f"{ratio:.2f} ±{spread:.2f}" + (
            " (noisy)" if noise["noisy"] else ""
        )
    return list(columns), table, baselines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="result files or folders (vitprune bench --output)")
    parser.add_argument(
        "--by-cell", action="store_true", help="one row per (backend, threads, batch, model), one column per method"
    )
    args = parser.parse_args(argv)
    from vitprune_export.measure.results import load_results

    results = [r for r in load_results(args.results) if r["kind"] == "latency"]
    columns, table, baselines = ratio_rows(results)
    if args.by_cell:
        from vitprune_export import list_methods

        registry = list(list_methods())
        methods = sorted(table, key=lambda m: registry.index(m) if m in registry else len(registry))
        methods.sort(key=lambda m: m != "first")  # the bound of a free pruning step, next to the baseline
        print("| cell | unpruned (ms) | " + " | ".join(methods) + " |")
        print("| --- | ---: |" + " ---: |" * len(methods))
        for column in columns:
            unpruned = f"{baselines[column]:.1f}" if column in baselines else "–"
            print(f"| {column} | {unpruned} | " + " | ".join(table[m].get(column, "–") for m in methods) + " |")
        return 0
    print("| method | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    print("| unpruned (ms) | " + " | ".join(f"{baselines[c]:.1f}" if c in baselines else "–" for c in columns) + " |")
    for method, cells in table.items():
        print(f"| {method} | " + " | ".join(cells.get(c, "–") for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
