"""Does latency fall as far as the FLOPs? Methods × rates on ``ort-cpu`` and ``torch-cpu``, interleaved with the baseline.

Wall-clock latency on a shared, 2-core machine drifts by 2× within minutes
So every pruned variant is timed in short chunks that
alternate with chunks of the unpruned baseline, in one process
(``A B A C A D …``): each pruned chunk is compared with the baseline chunk just
before it, and the latency ratio reported is the median of those paired
ratios. Printed per cell: FLOPs (MACs) reduction, latency reduction, and
their ratio — the goal is ratio ≥ 0.9 (latency falls by at least 90% of the
FLOPs reduction) — with the spread of the paired ratios and a ``noisy`` flag
when that spread is wider than the latency difference measured.

Grid axes take comma lists: ``--model``, ``--batch``, ``--threads`` (and
``--methods``, ``--rates``, ``--backends``). Each (model, batch, threads,
backend) group is measured on its own, all of its variants interleaved. The
runners choose what the grid leaves open and record it (ONNX Runtime:
spinning and graph optimisation, timed at load; see
``vitprune_export/measure/runners``); ``--spinning`` and ``--graph-optimization``
fix them. ``torch-cpu-compile`` is ``torch-cpu`` under ``torch.compile``,
a backend of its own (it is a different program from eager).

``--ceiling`` adds the method ``first`` (labelled ``ceiling``): it keeps the first
tokens by a static slice, at the same keep counts as the methods: no scoring, no
gathering — the best any method of this schedule can do on this machine.
``--cpu-time`` (with one thread) times each query by the CPU time of the
calling thread. ``--callgrind`` adds a repeatable column: instructions per
query counted by ``valgrind --tool=callgrind`` in ONNX Runtime with one
thread. ``--op-profile`` prints ONNX Runtime's kernel time per op type.
``--json`` writes every row, the settings each runner used and the machine
load (``os.getloadavg`` before and after); ``--output-dir`` writes one
``vitprune.result/1`` JSON per cell.

The numbers in docs/results.md (one command, ~1 h on 2 cores)::

    python benchmarks/latency_sweep.py --model vit_small_patch16_224,vit_base_patch16_224 \\
        --methods topk,topk-vpa,evit,etps,tome --rates 0.06 --backends ort-cpu,torch-cpu \\
        --batch 1,8 --threads 1,2 --ceiling --json sweep.json
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

#: backend label → (runner name, runner options)
BACKENDS = {
    "ort-cpu": ("ort-cpu", {}),
    "torch-cpu": ("torch-cpu", {}),
    "torch-cpu-compile": ("torch-cpu", {"compile": "default"}),
}


def _ints(text: str) -> list[int | None]:
    return [int(part) if part else None for part in text.split(",")] if text else [None]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", "--models", dest="models", default="vit_small_patch16_224", help="comma-separated timm models"
    )
    parser.add_argument("--methods", default="topk,topk-vpa,evit,etps,tome", help="comma-separated, or 'all'")
    parser.add_argument("--rates", default="0.06", help="comma-separated rates")
    parser.add_argument("--backends", default="ort-cpu,torch-cpu", help=f"comma-separated: {', '.join(BACKENDS)}")
    parser.add_argument("--batch", default="1", help="comma-separated batch sizes")
    parser.add_argument(
        "--threads", default="", help="comma-separated intra-op thread counts (empty: the runner chooses)"
    )
    parser.add_argument("--spinning", default="auto", choices=("auto", "on", "off"), help="ort-cpu intra-op spinning")
    parser.add_argument("--graph-optimization", default="auto", help="ort-cpu: auto | all | extended | basic | disable")
    parser.add_argument("--warmup", type=int, default=10, help="untimed queries per variant before the sweep")
    parser.add_argument("--rounds", type=int, default=20, help="A/B rounds per variant")
    parser.add_argument("--chunk", type=int, default=5, help="timed queries per chunk")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="per group: fewer rounds (at least 5) when the planned queries would take longer",
    )
    parser.add_argument(
        "--ceiling", action="store_true", help="add the method 'first' (a static slice, no selection cost) as 'ceiling'"
    )
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
    parser.add_argument("--json", type=Path, default=None, help="write every row, the settings and the load as JSON")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.batches = [b for b in _ints(args.batch) if b] or [1]
    args.thread_counts = _ints(args.threads)
    unknown = [b for b in args.backends.split(",") if b and b not in BACKENDS]
    if unknown:
        parser.error(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(BACKENDS)}")
    if args.cpu_time and args.thread_counts != [1]:
        parser.error("--cpu-time measures one thread: pass --threads 1")
    return args


# ---------------------------------------------------------------- variants


def build_variants(model_name: str, args, console):
    """[(key, method, rate, network)] with the baseline first; methods that fail to build are skipped."""
    import torch

    from vitprune_export import apply_method, create_model, list_methods
    from vitprune_export.errors import VitPruneError
    from vitprune_export.pruning.methods import method_class

    methods = (
        [m for m in list_methods() if m != "none"]
        if args.methods == "all"
        else [m for m in args.methods.split(",") if m]
    )
    rates = [float(r) for r in args.rates.split(",")]
    torch.manual_seed(0)
    base = create_model(model_name, "random")
    variants = [("none", "none", None, apply_method(copy.deepcopy(base), "none"))]
    if args.ceiling:
        for rate in rates:
            variants.append(
                (f"ceiling@{rate:g}", "ceiling", rate, apply_method(copy.deepcopy(base), "first", rate=rate))
            )
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


def export_variants(variants, model_name: str, batch: int, console, folder: Path):
    from vitprune_export.export.onnx import export_onnx

    paths = {}
    for key, method, rate, network in variants:
        path = folder / f"{model_name}_{method}_r{rate or 0:g}_b{batch}.onnx"
        if not path.is_file():
            started = time.perf_counter()
            try:
                with console.status(f"exporting {model_name} {key} (batch {batch}) …"):
                    exported = export_onnx(network, path, batch=batch, model_name=model_name, check=False)
                if exported.parity_max_abs_diff > 1e-4:
                    console.print(
                        f"[yellow]note[/] {key}: ONNX Runtime differs from PyTorch by {exported.parity_max_abs_diff:.2g}"
                    )
            except Exception as error:  # a method that cannot export is reported, not fatal
                console.print(f"[yellow]skip[/] {key} on ort-cpu: export failed: {str(error).splitlines()[0]}")
                continue
            console.print(f"exported {key} → {path.name} ({time.perf_counter() - started:.0f} s)")
        paths[key] = path
    return paths


# ---------------------------------------------------------------- interleaved timing


def interleaved(runners: dict, baseline_key: str, rounds: int, chunk: int, warmup: int, label: str):
    """Per pruned variant: ``rounds`` × (baseline chunk, pruned chunk). Returns samples and paired ratios."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    samples = {key: [] for key in runners}
    ratios = {key: [] for key in runners if key != baseline_key}
    for runner in runners.values():
        for _ in range(warmup):
            runner.infer()
    pruned = [key for key in runners if key != baseline_key]
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    ) as bar:
        task = bar.add_task(f"{label}: A/B rounds", total=rounds * len(pruned))
        for _ in range(rounds):
            for key in pruned:  # A B A C A D … then the next round
                base_chunk = [runners[baseline_key].infer() for _ in range(chunk)]
                pruned_chunk = [runners[key].infer() for _ in range(chunk)]
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


def load_runners(backend: str, threads: int | None, batch: int, variants, onnx_paths, model_name: str, args):
    from vitprune_export.measure.runners import get_runner

    runner_name, options = BACKENDS[backend]
    if runner_name == "ort-cpu":
        options = dict(options, spinning=args.spinning, graph_optimization=args.graph_optimization)
    runners = {}
    for key, _, _, network in variants:
        runner = get_runner(runner_name, threads=threads, **options)
        if runner_name == "ort-cpu":
            if key not in onnx_paths:
                continue
            runner.load(onnx_paths[key], batch=batch, model_name=model_name)
        else:
            runner.load(copy.deepcopy(network), batch=batch, model_name=model_name)
        runners[key] = runner
    return runners


def planned_rounds(runners: dict, args) -> int:
    """``--rounds``, or fewer (≥ 5) when ``--max-seconds`` would be exceeded at the warm-up's pace."""
    if not args.max_seconds:
        return args.rounds
    seconds = {key: statistics.median([runner.infer() for _ in range(3)]) / 1e3 for key, runner in runners.items()}
    pruned = [key for key in runners if key != "none"]
    per_round = args.chunk * sum(seconds["none"] + seconds[key] for key in pruned)  # one baseline chunk per variant
    return max(5, min(args.rounds, int(args.max_seconds / max(per_round, 1e-9))))


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


def print_op_table(console, onnx_paths: dict, batch: int, threads: int | None) -> dict:
    from rich.table import Table

    times = {key: op_times(path, batch, threads) for key, path in onnx_paths.items()}
    ops = list(dict.fromkeys(op for per_key in times.values() for op in per_key))
    table = Table(
        title=f"ONNX Runtime kernel time per op type (ms per query, mean of 20; batch {batch}, {threads or 'default'} threads)"
    )
    table.add_column("op")
    for key in times:
        table.add_column(key, justify="right")
    for op in ops:
        table.add_row(op, *(f"{times[key].get(op, 0.0):.2f}" for key in times))
    table.add_row("[bold]total[/]", *(f"{sum(times[key].values()):.2f}" for key in times))
    console.print(table)
    return times


# ---------------------------------------------------------------- report


def _iqr(values: list[float]) -> list[float]:
    import numpy as np

    return [float(np.percentile(values, 25)), float(np.percentile(values, 75))]


def measure_group(backend, threads, batch, model_name, variants, macs, onnx_paths, args, console, write_results):
    """One (model, batch, threads, backend) group, all variants interleaved; returns its rows."""
    from vitprune_export.measure.profile import capture_environment, default_device_name, latency_result
    from vitprune_export.measure.results import default_result_path, write_result

    label = f"{model_name} b{batch} {backend} {threads or 'auto'}t"
    with console.status(f"{label}: loading and tuning runners …"):
        runners = load_runners(backend, threads, batch, variants, onnx_paths, model_name, args)
    timed = {key: ThreadCpuTimer(runner) for key, runner in runners.items()} if args.cpu_time else runners
    rounds = planned_rounds(timed, args)
    load_before = os.getloadavg()
    samples, ratios = interleaved(timed, "none", rounds, args.chunk, args.warmup, label)
    load_after = os.getloadavg()
    device = args.device_name or default_device_name(runners["none"])
    environment = capture_environment(runners["none"])
    rows = []
    for key, method, rate, _ in variants:
        if key not in runners:
            continue
        runner = runners[key]
        if write_results and method != "ceiling":
            result = latency_result(runner.loaded, runner, samples[key], args.warmup, device, environment)
            timer = "thread CPU time, 1 thread" if args.cpu_time else "wall-clock"
            result["source"] = f"benchmarks/latency_sweep.py (interleaved, {rounds} rounds × {args.chunk}, {timer})"
            write_result(default_result_path(result, args.output_dir), result)
        if key == "none":
            continue
        flops_reduction = 1 - macs[key] / macs["none"]
        latency_reduction = 1 - statistics.median(ratios[key])
        low, high = _iqr(ratios[key])
        rows.append(
            {
                "model": model_name,
                "batch": batch,
                "backend": backend,
                "threads": runner.threads,
                "method": method,
                "rate": rate,
                "gmacs": macs[key] / 1e9,
                "baseline_gmacs": macs["none"] / 1e9,
                "flops_reduction": flops_reduction,
                "latency_ms": statistics.median(samples[key]),
                "baseline_latency_ms": statistics.median(samples["none"]),
                "latency_reduction": latency_reduction,
                "ratio": latency_reduction / flops_reduction if flops_reduction > 0 else float("nan"),
                "paired_ratio_iqr": [low, high],
                # the middle half of the paired ratios is wider than the latency difference itself
                "noisy": (high - low) > abs(latency_reduction),
                "rounds": rounds,
                "settings": runner.settings,
                "baseline_settings": runners["none"].settings,
                "load_before": load_before,
                "load_after": load_after,
            }
        )
    for runner in runners.values():
        runner.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.table import Table

    from vitprune_export.pruning.flops import count_macs

    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 170)
    backends = [backend for backend in args.backends.split(",") if backend]  # "" → callgrind only
    folder = args.work_dir or Path(tempfile.mkdtemp(prefix="vitprune-sweep-"))
    folder.mkdir(parents=True, exist_ok=True)
    started_load = os.getloadavg()
    console.print(f"load average before: {started_load[0]:.2f} {started_load[1]:.2f} {started_load[2]:.2f}")
    rows, op_tables = [], {}
    for model_name in args.models:
        variants = build_variants(model_name, args, console)
        macs = {key: count_macs(network).macs for key, _, _, network in variants}
        for batch in args.batches:
            needs_onnx = "ort-cpu" in backends or args.callgrind or args.op_profile
            onnx_paths = export_variants(variants, model_name, batch, console, folder) if needs_onnx else {}
            for backend in backends:
                for threads in args.thread_counts:
                    rows += measure_group(
                        backend,
                        threads,
                        batch,
                        model_name,
                        variants,
                        macs,
                        onnx_paths,
                        args,
                        console,
                        bool(args.output_dir),
                    )
            if args.callgrind:
                rows += callgrind_rows(onnx_paths, macs, model_name, batch, console)
            if args.op_profile:
                for threads in args.thread_counts:
                    op_tables[f"{model_name} b{batch} {threads or 'default'}t"] = print_op_table(
                        console, onnx_paths, batch, threads
                    )

    table = Table(title="latency reduction vs FLOPs reduction (goal: ratio ≥ 0.90), interleaved A/B")
    for column in (
        "model",
        "batch",
        "backend",
        "threads",
        "method",
        "FLOPs −%",
        "latency (ms)",
        "latency −%",
        "ratio",
        "IQR",
        "goal",
        "settings",
    ):
        table.add_column(column, justify="left" if column in ("model", "backend", "method", "settings") else "right")
    for row in rows:
        if "latency_ms" in row:
            latency = f"{row['baseline_latency_ms']:.1f} → {row['latency_ms']:.1f}"
            flops = 100 * row["flops_reduction"]
            low, high = (1 - value for value in row["paired_ratio_iqr"])
            spread = f"{high / row['flops_reduction']:.2f}–{low / row['flops_reduction']:.2f}" + (
                " noisy" if row["noisy"] else ""
            )
        else:
            latency = f"{row['baseline_instructions'] / 1e6:.0f}M → {row['instructions'] / 1e6:.0f}M instr"
            flops, spread = 100 * row["flops_reduction"], ""
        table.add_row(
            row["model"].replace("_patch16_224", ""),
            str(row["batch"]),
            row["backend"],
            str(row["threads"]),
            row["method"],
            f"{flops:.1f}",
            latency,
            f"{100 * row['latency_reduction']:.1f}",
            f"{row['ratio']:.2f}",
            spread,
            "[green]yes[/]" if row["ratio"] >= 0.9 else "[red]no[/]",
            _short_settings(row.get("settings")),
        )
    console.print(table)
    finished_load = os.getloadavg()
    console.print(f"load average after: {finished_load[0]:.2f} {finished_load[1]:.2f} {finished_load[2]:.2f}")
    if args.json:
        from vitprune_export.files import atomic_write_text

        payload = {
            "args": {k: str(v) for k, v in vars(args).items()},
            "load_before": started_load,
            "load_after": finished_load,
            "rows": rows,
            "op_ms": op_tables or None,
        }
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


def _short_settings(settings: dict | None) -> str:
    if not settings:
        return ""
    parts = []
    if "spinning" in settings and settings.get("threads", 1) > 1:
        parts.append("spin" if settings["spinning"] else "no-spin")
    if "graph_optimization" in settings:
        parts.append(settings["graph_optimization"])
    if settings.get("compile") not in (None, "eager"):
        parts.append(f"compile:{settings['compile']}")
    return " ".join(parts)


def callgrind_rows(onnx_paths: dict, macs: dict, model_name: str, batch: int, console) -> list[dict]:
    from concurrent.futures import ThreadPoolExecutor

    with console.status(f"counting instructions with callgrind ({model_name}, batch {batch}, ort-cpu, 1 thread) …"):
        keys = list(onnx_paths)  # one valgrind process per variant, as many at once as there are cores
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            counts = dict(zip(keys, pool.map(lambda key: instructions_per_query(onnx_paths[key], batch), keys)))
    rows = []
    for key in onnx_paths:
        if key == "none":
            continue
        method, rate = key.split("@")
        flops_reduction = 1 - macs[key] / macs["none"]
        reduction = 1 - counts[key] / counts["none"]
        rows.append(
            {
                "model": model_name,
                "batch": batch,
                "backend": "ort-cpu callgrind",
                "method": method,
                "rate": float(rate),
                "threads": 1,
                "gmacs": macs[key] / 1e9,
                "baseline_gmacs": macs["none"] / 1e9,
                "flops_reduction": flops_reduction,
                "instructions": counts[key],
                "baseline_instructions": counts["none"],
                "latency_reduction": reduction,
                "ratio": reduction / flops_reduction,
            }
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
