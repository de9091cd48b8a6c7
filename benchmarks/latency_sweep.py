"""Sweep methods × rates for one model on ``ort-cpu`` and ``torch-cpu``; baseline and pruned interleaved.

Wall-clock latency on a shared, 2-core machine drifts by 2× within minutes.
So every pruned variant is timed in short chunks that
alternate with chunks of the unpruned baseline, in one process
(``A B A B …``): each pruned chunk is compared with the baseline chunk just
before it, and the latency ratio reported is the median of those paired
ratios. Printed per method: FLOPs (MACs) reduction, latency reduction, and
their ratio — the goal is a ratio ≥ 0.9 (latency falls by at least 90%
of the FLOPs reduction). With ``--output-dir`` each variant's samples are also
written as ``vitprune.result/1`` JSONs that ``vitprune compare`` reads.

``--cpu-time --threads 1`` times each query by the CPU time of the calling
thread (robust when other processes hold the cores). ``--op-profile`` prints
ONNX Runtime's kernel time per op type. ``--callgrind`` adds a repeatable column:
instructions per query counted by ``valgrind --tool=callgrind`` in ONNX Runtime
with one thread (slow: several CPU-minutes per ViT-S variant).

Example (the numbers in docs/profiling.md)::

    python benchmarks/latency_sweep.py --model vit_small_patch16_224 --rates 0.06 \
        --methods topk,topk-vpa,evit,tome --backends ort-cpu,torch-cpu --threads 1 --cpu-time --op-profile
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--methods", default="topk,topk-vpa,evit,tome", help="comma-separated, or 'all'")
    parser.add_argument("--rates", default="0.06", help="comma-separated rates")
    parser.add_argument("--backends", default="ort-cpu,torch-cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the runtime's own)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries per variant before the sweep")
    parser.add_argument("--rounds", type=int, default=20, help="A/B rounds per variant")
    parser.add_argument("--chunk", type=int, default=5, help="timed queries per chunk")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where the ONNX files go (default: a temporary folder)"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="write result JSONs here (profiles/results layout)"
    )
    parser.add_argument("--device-name", default=None)
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="time each query by the CPU time of the calling thread (needs --threads 1): robust on an overloaded machine",
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="also count instructions with valgrind (ort-cpu, 1 thread)"
    )
    parser.add_argument("--op-profile", action="store_true", help="also print ONNX Runtime kernel time per op type")
    parser.add_argument("--json", type=Path, default=None, help="write the summary table as JSON")
    return parser.parse_args(argv)


# ---------------------------------------------------------------- variants


def build_variants(args, console):
    """[(key, method, rate, network)] with the baseline first; methods that fail to build are skipped."""
    from vitprune_export import apply_method, create_model, list_methods
    from vitprune_export.errors import VitPruneError
    from vitprune_export.pruning.methods import method_class

    methods = [m for m in list_methods() if m != "none"] if args.methods == "all" else args.methods.split(",")
    rates = [float(r) for r in args.rates.split(",")]
    import torch

    torch.manual_seed(0)
    base = create_model(args.model, "random")
    variants = [("none", "none", None, apply_method(copy.deepcopy(base), "none"))]
    for method in methods:
        # a method that keeps every token (BSPF) ignores the rate: one variant, at rate 0
        method_rates = rates if method_class(method).changes_token_count else [0.0]
        for rate in method_rates:
            try:
                network = apply_method(copy.deepcopy(base), method, rate=rate)
            except VitPruneError as error:
                console.print(f"[yellow]skip[/] {method} r={rate}: {error}")
                continue
            variants.append((f"{method}@{rate:g}", method, rate, network))
    return variants


def export_variants(variants, args, console, folder: Path):
    from vitprune_export.export.onnx import export_onnx

    paths = {}
    for key, method, rate, network in variants:
        path = folder / f"{args.model}_{method}_r{rate or 0:g}_b{args.batch}.onnx"
        if not path.is_file():
            started = time.perf_counter()
            try:
                with console.status(f"exporting {key} …"):
                    export_onnx(
                        network, path, batch=args.batch, model_name=args.model, check=False
                    )  # MACs in the record
            except Exception as error:  # a method that cannot export is reported, not fatal
                console.print(f"[yellow]skip[/] {key} on ort-cpu: export failed: {str(error).splitlines()[0]}")
                continue
            console.print(f"exported {key} → {path.name} ({time.perf_counter() - started:.0f} s)")
        paths[key] = path
    return paths


# ---------------------------------------------------------------- interleaved timing


def interleaved(runners: dict, baseline_key: str, args, console, backend: str):
    """Per pruned variant: ``rounds`` × (baseline chunk, pruned chunk). Returns samples and paired ratios."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    samples = {key: [] for key in runners}
    ratios = {key: [] for key in runners if key != baseline_key}
    for runner in runners.values():
        for _ in range(args.warmup):
            runner.infer()
    pruned = [key for key in runners if key != baseline_key]
    total = args.rounds * len(pruned)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    ) as bar:
        task = bar.add_task(f"{backend}: A/B rounds", total=total)
        for _ in range(args.rounds):
            for key in pruned:  # A B A C A D … then the next round
                base_chunk = [runners[baseline_key].infer() for _ in range(args.chunk)]
                pruned_chunk = [runners[key].infer() for _ in range(args.chunk)]
                samples[baseline_key].extend(base_chunk)
                samples[key].extend(pruned_chunk)
                ratios[key].append(statistics.median(pruned_chunk) / statistics.median(base_chunk))
                bar.update(task, advance=1)
    return samples, ratios


class ThreadCpuTimer:
    """Wraps a runner: ``infer()`` returns the CPU time (ms) of the calling thread instead of wall-clock.

    With one intra-op thread, ONNX Runtime and PyTorch run every kernel on the
    calling thread, so this counts the work of the query and not the time spent
    waiting for a core that other processes hold.
    """

    def __init__(self, runner):
        self.runner = runner

    def infer(self) -> float:
        started = time.thread_time_ns()
        self.runner.infer()
        return (time.thread_time_ns() - started) / 1e6


def run_backend(backend: str, variants, onnx_paths, args, console):
    from vitprune_export.measure.runners import get_runner

    runners = {}
    for key, _method, _rate, network in variants:
        runner = get_runner(backend, threads=args.threads)
        if backend == "ort-cpu":
            if key not in onnx_paths:
                continue
            runner.load(onnx_paths[key], batch=args.batch, model_name=args.model)
        else:
            runner.load(network, batch=args.batch, model_name=args.model)
        runners[key] = runner
    timed = {key: ThreadCpuTimer(runner) for key, runner in runners.items()} if args.cpu_time else runners
    samples, ratios = interleaved(timed, "none", args, console, backend)
    return runners, samples, ratios


# ---------------------------------------------------------------- callgrind


TOGGLE_C = """
#include <valgrind/callgrind.h>
void vitprune_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void vitprune_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""

CALLGRIND_SNIPPET = """
import ctypes, sys, numpy as np, onnxruntime as ort
toggle = ctypes.CDLL(sys.argv[3])
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.inter_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
i = s.get_inputs()[0]
x = {i.name: np.random.default_rng(0).standard_normal([int(sys.argv[2])] + list(i.shape[1:]), dtype=np.float32)}
s.run(None, x)
toggle.vitprune_start()
for _ in range(int(sys.argv[4])):
    s.run(None, x)
toggle.vitprune_stop()
"""


def instructions_per_query(path: Path, batch: int, runs: int = 2) -> int:
    """Instructions per query in ONNX Runtime (1 thread), counted by callgrind around the queries only.

    Valgrind starts with instrumentation off (``--instr-atstart=no``), so Python's
    start-up and session creation cost nothing; a tiny C library built here with
    ``valgrind/callgrind.h`` switches it on just before the timed queries.
    """
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "toggle.c").write_text(TOGGLE_C)
        subprocess.run(
            ["cc", "-O2", "-shared", "-fPIC", "-o", str(folder / "toggle.so"), str(folder / "toggle.c")], check=True
        )
        (folder / "one.py").write_text(CALLGRIND_SNIPPET)
        completed = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={folder / 'out'}",
                sys.executable,
                str(folder / "one.py"),
                str(path),
                str(batch),
                str(folder / "toggle.so"),
                str(runs),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        match = re.search(r"Collected\s*:\s*(\d+)", completed.stderr)
        if completed.returncode != 0 or not match:
            raise RuntimeError(f"callgrind failed: {completed.stderr[-400:]}")
        return int(match.group(1)) // runs


# ---------------------------------------------------------------- ONNX Runtime per-operator time


def op_times(path: Path, batch: int, threads: int | None, runs: int = 20) -> dict[str, float]:
    """Mean ms per query spent in each ONNX op type (ONNX Runtime's profiler, kernel time only)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"ortprof-{path.stem}")
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model_input = session.get_inputs()[0]
    feed = {
        model_input.name: np.random.default_rng(0).standard_normal([batch, *model_input.shape[1:]], dtype=np.float32)
    }
    for _ in range(runs):  # the first queries (allocation) are averaged in
        session.run(None, feed)
    totals: dict[str, float] = {}
    profile_path = Path(session.end_profiling())
    for event in json.loads(profile_path.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + event["dur"] / 1000.0 / runs
    profile_path.unlink(missing_ok=True)
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def print_op_table(console, onnx_paths: dict, args) -> dict:
    from rich.table import Table

    times = {key: op_times(path, args.batch, args.threads) for key, path in onnx_paths.items()}
    ops = list(dict.fromkeys(op for per_key in times.values() for op in per_key))
    table = Table(title="ONNX Runtime kernel time per op type (ms per query, mean of 20)")
    table.add_column("op")
    for key in times:
        table.add_column(key, justify="right")
    for op in ops:
        table.add_row(op, *(f"{times[key].get(op, 0.0):.2f}" for key in times))
    table.add_row("[bold]total[/]", *(f"{sum(times[key].values()):.2f}" for key in times))
    console.print(table)
    return times


# ---------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from vitprune_export.measure.profile import capture_environment, default_device_name, latency_result
    from vitprune_export.measure.results import default_result_path, write_result
    from vitprune_export.pruning.flops import count_macs

    args = parse_args(argv)
    if args.cpu_time and args.threads != 1:
        raise SystemExit("--cpu-time measures one thread: pass --threads 1")
    console = Console(width=None if sys.stdout.isatty() else 150)
    backends = [backend for backend in args.backends.split(",") if backend]  # "" → callgrind only
    variants = build_variants(args, console)
    macs = {key: count_macs(network).macs for key, _, _, network in variants}
    folder = args.work_dir or Path(tempfile.mkdtemp(prefix="vitprune-sweep-"))
    folder.mkdir(parents=True, exist_ok=True)
    onnx_paths = export_variants(variants, args, console, folder) if "ort-cpu" in backends or args.callgrind else {}

    rows = []
    for backend in backends:
        runners, samples, ratios = run_backend(backend, variants, onnx_paths, args, console)
        device = args.device_name or default_device_name(runners["none"])
        environment = capture_environment(runners["none"])
        for key, method, rate, _ in variants:
            if key not in runners:
                continue
            if args.output_dir:
                result = latency_result(
                    runners[key].loaded, runners[key], samples[key], args.warmup, device, environment
                )
                timer = "thread CPU time, 1 thread" if args.cpu_time else "wall-clock"
                result["source"] = (
                    f"benchmarks/latency_sweep.py (interleaved, {args.rounds} rounds × {args.chunk}, {timer})"
                )
                write_result(default_result_path(result, args.output_dir), result)
            if key == "none":
                continue
            flops_reduction = 1 - macs[key] / macs["none"]
            latency_ratio = statistics.median(ratios[key])
            latency_reduction = 1 - latency_ratio
            rows.append(
                {
                    "backend": backend,
                    "method": method,
                    "rate": rate,
                    "threads": environment["threads"],
                    "keep_last": runners[key].loaded.keep_counts[-1],
                    "gmacs": macs[key] / 1e9,
                    "baseline_gmacs": macs["none"] / 1e9,
                    "flops_reduction": flops_reduction,
                    "latency_ms": statistics.median(samples[key]),
                    "baseline_latency_ms": statistics.median(samples["none"]),
                    "latency_reduction": latency_reduction,
                    "ratio": latency_reduction / flops_reduction if flops_reduction > 0 else float("nan"),
                    "paired_ratio_iqr": _iqr(ratios[key]),
                }
            )
        for runner in runners.values():
            runner.close()

    if args.callgrind:
        with console.status("counting instructions with callgrind (ort-cpu, 1 thread) …"):
            from concurrent.futures import ThreadPoolExecutor

            keys = list(onnx_paths)  # one valgrind process per variant, as many at once as there are cores
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                counts = dict(
                    zip(keys, pool.map(lambda key: instructions_per_query(onnx_paths[key], args.batch), keys))
                )
        for key in onnx_paths:
            if key == "none":
                continue
            method, rate = key.split("@")
            flops_reduction = 1 - macs[key] / macs["none"]
            reduction = 1 - counts[key] / counts["none"]
            rows.append(
                {
                    "backend": "ort-cpu callgrind",
                    "method": method,
                    "rate": float(rate),
                    "threads": 1,
                    "keep_last": None,
                    "gmacs": macs[key] / 1e9,
                    "baseline_gmacs": macs["none"] / 1e9,
                    "flops_reduction": flops_reduction,
                    "instructions": counts[key],
                    "baseline_instructions": counts["none"],
                    "latency_reduction": reduction,
                    "ratio": reduction / flops_reduction,
                }
            )

    op_table = print_op_table(console, onnx_paths, args) if args.op_profile else None
    table = Table(title=f"{args.model}, batch {args.batch}: latency reduction vs FLOPs reduction (goal: ratio ≥ 0.90)")
    for column in ("backend", "method", "rate", "GMACs", "FLOPs −%", "latency (ms)", "latency −%", "ratio", "goal"):
        table.add_column(column, justify="left" if column in ("backend", "method") else "right")
    for row in rows:
        if "latency_ms" in row:
            latency = f"{row['baseline_latency_ms']:.1f} → {row['latency_ms']:.1f}"
        else:
            latency = f"{row['baseline_instructions'] / 1e6:.0f}M → {row['instructions'] / 1e6:.0f}M instr"
        table.add_row(
            row["backend"],
            row["method"],
            f"{row['rate']:g}",
            f"{row['baseline_gmacs']:.2f} → {row['gmacs']:.2f}",
            f"{100 * row['flops_reduction']:.1f}",
            latency,
            f"{100 * row['latency_reduction']:.1f}",
            f"{row['ratio']:.2f}",
            "[green]yes[/]" if row["ratio"] >= 0.9 else "[red]no[/]",
        )
    console.print(table)
    if args.json:
        from vitprune_export.files import atomic_write_text

        atomic_write_text(
            args.json,
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "op_ms": op_table}, indent=2)
            + "\n",
        )
    return 0


def _iqr(values: list[float]) -> list[float]:
    import numpy as np

    return [float(np.percentile(values, 25)), float(np.percentile(values, 75))]


if __name__ == "__main__":
    sys.exit(main())
