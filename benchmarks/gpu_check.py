"""Everything vitprune can only check on an NVIDIA GPU, in one command (under 8 minutes on an H100/H200).

    python benchmarks/gpu_check.py                        # writes runs/gpu_check-<UTC time>/
    python benchmarks/gpu_check.py --out /tmp/gpu_check --model vit_small_patch16_224 --rate 0.06

Steps, each recorded with its status (passed, failed, skipped + why) and seconds in ``summary.json``
and ``summary.md`` of the output folder:

1. ``environment``: GPU, compute capability, driver, CUDA, PyTorch, nvcc, TensorRT modules.
2. ``gpu_tests``: the GPU-marked tests (``pytest -m gpu``): the CUDA kernels of the plugin ops against
   their PyTorch references (fp32 ≤ 1e-4, fp16 ≤ 1e-2, 5 shapes per op), the torch-cuda runner.
3. ``plugin_kernels``: benchmarks/plugin_kernels.py — each kernel vs the PyTorch decomposition, batch 1 and 32.
4. ``torch_cuda_latency``: every method (``vitprune methods``) on ``--model`` at ``--rate``, PyTorch CUDA,
   batch 1 and 32, fp32 and fp16, vitprune's protocol (warm-up 20, 100 timed iterations, CUDA events);
   Δ% of the median against the unpruned model measured in the same run (measured first and last, so
   drift shows). One ``vitprune.result/1`` JSON per measurement under ``results/`` (``vitprune compare``).
5. ``tensorrt_rtx``: where TensorRT for RTX is installed and targets this GPU (its ``ComputeCapability``
   list; Hopper sm_90 is not among them), build fp16 engines of ``none``/``topk``/``tome`` for this GPU and
   time them at batch 1 and 32 with the ``trt`` runner; otherwise skipped with the reason.

``--smoke`` runs the same steps on the CPU at toy sizes (tiny ViT, a few iterations, torch-cpu), to check
the script itself where there is no GPU; its numbers are not GPU numbers. Exit code: 0 when no step
failed (skipped steps are fine), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
TENSORRT_METHODS = ("none", "topk", "tome")


class Skip(Exception):
    """A step that cannot run here; the message says why."""


class StepFailed(Exception):
    """A step that ran but failed in part; ``details`` holds what it did measure."""

    def __init__(self, message: str, details):
        super().__init__(message)
        self.details = details


# ---------------------------------------------------------------- steps


def step_environment(args, out: Path) -> dict:
    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "torch_cuda": torch.version.cuda,
        "nvcc": None,
        "tensorrt": {},
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(
            gpu=properties.name,
            compute_capability=f"{properties.major}.{properties.minor}",
            memory_gib=round(properties.total_memory / 2**30, 1),
        )
        smi = _quiet(
            ["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.limit", "--format=csv,noheader"]
        )
        if smi:
            info["nvidia_smi"] = smi.splitlines()[0]
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if nvcc:
        info["nvcc"] = (_quiet([nvcc, "--version"]) or "").strip().splitlines()[-1:]
    for name in ("tensorrt", "tensorrt_rtx"):
        try:
            module = __import__(name)
            info["tensorrt"][name] = getattr(module, "__version__", "?")
        except Exception as error:  # recorded, not fatal
            info["tensorrt"][name] = f"not importable ({type(error).__name__})"
    (out / "environment.json").write_text(json.dumps(info, indent=2) + "\n")
    return {"summary": info.get("gpu") or "no CUDA GPU", "details": info}


#: the files holding the GPU tests, the plugin kernels' odd-input cases first (tests/test_gpu_check.py checks they exist)
GPU_TEST_FILES = ("tests/export/test_plugin_kernels.py", "tests/accuracy/test_runtime.py")


def step_gpu_tests(args, out: Path) -> dict:
    import torch

    if not torch.cuda.is_available() and not args.smoke:
        raise Skip("no CUDA GPU visible (torch.cuda.is_available() is False)")
    report = out / "gpu_tests.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        "-rs",
        f"--junitxml={report}",
        *GPU_TEST_FILES,
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=args.step_timeout,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    (out / "gpu_tests.log").write_text(done.stdout + done.stderr)
    counts = _junit_counts(report)
    summary = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    if done.returncode not in (0, 5) or counts["failed"]:
        raise RuntimeError(f"GPU tests: {summary} (gpu_tests.log)")
    if counts["passed"] == 0:
        raise Skip(f"GPU tests: {summary} — nothing ran (gpu_tests.log lists why)")
    return {"summary": summary, "details": counts}


def step_plugin_kernels(args, out: Path) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA GPU visible")
    target = out / "plugin_kernels.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "plugin_kernels.py"),
        "--model",
        "vit_small",
        "--json",
        str(target),
    ]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=args.step_timeout,
        env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )
    (out / "plugin_kernels.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"plugin_kernels.py exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
    return {
        "summary": "kernel vs PyTorch decomposition, batch 1 and 32 (plugin_kernels.json)",
        "details": done.stdout[-2000:],
    }


def step_torch_cuda_latency(args, out: Path) -> dict:
    import torch

    from vitprune_export.measure.profile import profile
    from vitprune_export.measure.results import default_result_path, write_result
    from vitprune_export.measure.runners import get_runner
    from vitprune_export.pruning.methods import list_methods
    from vitprune_export.pruning.patch import create_pruned

    if not torch.cuda.is_available() and not args.smoke:
        raise Skip("no CUDA GPU visible")
    backend = "torch-cpu" if args.smoke else "torch-cuda"
    precisions = ["fp32"] if args.smoke else args.precisions
    methods = list_methods()
    order = ["none", *[m for m in methods if m != "none"], "none"]  # the baseline first and last: drift shows
    rows: dict[tuple, dict] = {}
    errors: list[str] = []
    for precision in precisions:
        for batch in args.batches:
            for position, method in enumerate(order):
                try:
                    torch.manual_seed(0)
                    model = create_pruned(args.model, method, rate=args.rate, weights="random")
                    runner = get_runner(backend, precision=precision)
                    result = profile(
                        runner,
                        model,
                        batch=batch,
                        warmup=args.warmup,
                        iterations=args.iterations,
                        device=args.device_name,
                        model_name=args.model,
                        progress=False,
                    )
                except Exception as error:  # one failed measurement does not stop the others
                    errors.append(
                        f"{method} {precision} b{batch}: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
                    )
                    continue
                finally:
                    model = None
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                if position == len(order) - 1:
                    rows.setdefault((precision, batch, "none"), {})["median_last"] = result["latency_ms"]["median"]
                    continue
                write_result(default_result_path(result, out / "results"), result)
                rows[(precision, batch, method)] = {
                    "median": result["latency_ms"]["median"],
                    "macs": result["macs"],
                    "keep_counts": result["keep_counts"],
                }
    table = []
    for (precision, batch, method), row in rows.items():
        baseline = rows.get((precision, batch, "none"), {})
        if "median" not in row or "median" not in baseline:
            continue
        table.append(
            {
                "method": method,
                "precision": precision,
                "batch": batch,
                "median_ms": row["median"],
                "delta_pct": 100 * (row["median"] / baseline["median"] - 1),
                "macs": row["macs"],
                "macs_delta_pct": None
                if not baseline["macs"] or row["macs"] is None
                else 100 * (row["macs"] / baseline["macs"] - 1),
                "baseline_drift_pct": 100 * (baseline.get("median_last", baseline["median"]) / baseline["median"] - 1),
            }
        )
    (out / "torch_latency.json").write_text(json.dumps({"rows": table, "errors": errors}, indent=2) + "\n")
    summary = f"{len(table)} measurements ({backend}, {', '.join(precisions)}, batch {args.batches})"
    if errors:
        raise StepFailed(f"{summary}; {len(errors)} failed, first: {errors[0]}", table)
    return {"summary": summary, "details": table}


def rtx_targets(trt) -> list[str]:
    """The compute capabilities TensorRT for RTX builds for (its ComputeCapability members, e.g. SM89)."""
    return sorted(name for name in dir(trt.ComputeCapability) if name.startswith("SM"))


def step_tensorrt_rtx(args, out: Path) -> dict:
    import torch

    if not torch.cuda.is_available():
        raise Skip("no CUDA GPU visible: TensorRT for RTX engines can be built here but not run")
    try:
        import tensorrt_rtx as trt
    except Exception as error:
        raise Skip(f"TensorRT for RTX is not importable ({type(error).__name__}); pip install tensorrt-rtx") from None
    major, minor = torch.cuda.get_device_capability(0)
    target = f"SM{major}{minor}"
    targets = rtx_targets(trt)
    if target not in targets:
        raise Skip(
            f"{torch.cuda.get_device_name(0)} is sm_{major}{minor}, which TensorRT for RTX {trt.__version__} does not "
            f"target ({', '.join(targets)}); its engines cannot run on this GPU"
        )
    import dataclasses

    from vitprune_export.export.onnx import export_onnx
    from vitprune_export.measure.profile import profile as measure_profile
    from vitprune_export.measure.results import default_result_path, write_result
    from vitprune_export.measure.runners import get_runner
    from vitprune_export.pruning.patch import create_pruned
    from vitprune_export.tensorrt.build import build_engine
    from vitprune_export.tensorrt.profiles import load_profile

    base = load_profile("rtx-generic")
    device_profile = dataclasses.replace(
        base, build=dataclasses.replace(base.build, compute_capabilities=[f"sm_{major}{minor}"])
    )
    engines = out / "engines"
    engines.mkdir(exist_ok=True)
    rows = []
    for method in TENSORRT_METHODS:
        model = create_pruned(args.model, method, rate=args.rate, weights="random")
        onnx_path = engines / f"{method}.onnx"
        export_onnx(model, onnx_path, dynamic_batch=True, model_name=args.model, check=False)
        built = build_engine(onnx_path, device_profile, output=engines / f"{method}_fp16.engine", fp16=True)
        for batch in args.batches:
            result = measure_profile(
                get_runner("trt", precision="fp16"),
                built.path,
                batch=batch,
                warmup=args.warmup,
                iterations=args.iterations,
                device=args.device_name,
                progress=False,
            )
            write_result(default_result_path(result, out / "results"), result)
            rows.append(
                {
                    "method": method,
                    "batch": batch,
                    "median_ms": result["latency_ms"]["median"],
                    "engine_mb": built.size_bytes / 1e6,
                    "build_s": built.seconds,
                }
            )
    (out / "tensorrt_rtx.json").write_text(json.dumps(rows, indent=2) + "\n")
    return {"summary": f"{len(rows)} engine measurements on {target}", "details": rows}


STEPS = (
    ("environment", step_environment),
    ("gpu_tests", step_gpu_tests),
    ("plugin_kernels", step_plugin_kernels),
    ("torch_cuda_latency", step_torch_cuda_latency),
    ("tensorrt_rtx", step_tensorrt_rtx),
)


# ---------------------------------------------------------------- helpers and report


def _quiet(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _junit_counts(path: Path) -> dict[str, int]:
    import xml.etree.ElementTree as ElementTree

    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if not path.is_file():
        return counts
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            counts["failed"] += 1
        elif "skipped" in kinds:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts


def report(steps: list[dict], args, out: Path, seconds: float) -> str:
    lines = [
        f"# vitprune GPU check ({'SMOKE RUN on the CPU: not GPU numbers' if args.smoke else 'GPU run'})",
        "",
        f"`python benchmarks/gpu_check.py {' '.join(sys.argv[1:])}` — {seconds:.0f} s, "
        f"{datetime.now(timezone.utc).replace(microsecond=0).isoformat()}",
        "",
        "| step | status | seconds | what |",
        "| --- | --- | --- | --- |",
    ]
    for step in steps:
        lines.append(f"| {step['name']} | {step['status']} | {step['seconds']:.0f} | {step['summary']} |")
    not_run = [step for step in steps if step["status"] != "passed"]
    lines += ["", "## Not run or failed", ""] + (
        [f"- {s['name']}: {s['status']} — {s['summary']}" for s in not_run] or ["- nothing"]
    )
    latency = next((s for s in steps if s["name"] == "torch_cuda_latency" and s.get("details")), None)
    if latency:
        lines += [
            "",
            f"## PyTorch latency, {args.model}, rate {args.rate} (median of {args.iterations}; Δ vs `none` in this run)",
            "",
            "| method | precision | batch | median ms | Δ latency | Δ MACs | baseline drift |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in latency["details"]:
            macs = "" if row["macs_delta_pct"] is None else f"{row['macs_delta_pct']:+.1f} %"
            lines.append(
                f"| {row['method']} | {row['precision']} | {row['batch']} | {row['median_ms']:.3f} | "
                f"{row['delta_pct']:+.1f} % | {macs} | {row['baseline_drift_pct']:+.1f} % |"
            )
    engines = next((s for s in steps if s["name"] == "tensorrt_rtx" and s["status"] == "passed"), None)
    if engines:
        lines += [
            "",
            "## TensorRT for RTX engines (fp16)",
            "",
            "| method | batch | median ms | engine MB | build s |",
            "| --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['method']} | {r['batch']} | {r['median_ms']:.3f} | {r['engine_mb']:.1f} | {r['build_s']:.1f} |"
            for r in engines["details"]
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/gpu_check-<UTC time>)")
    parser.add_argument(
        "--model", default=None, help="default vit_small_patch16_224 (vitprune_tiny_patch4_32 with --smoke)"
    )
    parser.add_argument("--rate", type=float, default=None, help="default 0.06 (0.1 with --smoke)")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--device-name", default=None, help="device name in the results (default: the GPU's)")
    parser.add_argument("--steps", default=",".join(name for name, _ in STEPS))
    parser.add_argument("--step-timeout", type=int, default=240, help="seconds for each subprocess step")
    parser.add_argument(
        "--smoke", action="store_true", help="run the steps on the CPU at toy sizes (checks the script)"
    )
    args = parser.parse_args(argv)
    args.model = args.model or ("vitprune_tiny_patch4_32" if args.smoke else "vit_small_patch16_224")
    args.rate = args.rate if args.rate is not None else (0.1 if args.smoke else 0.06)
    args.batches = [int(b) for b in args.batches.split(",")]
    args.precisions = args.precisions.split(",")
    if args.smoke:
        args.batches, args.warmup, args.iterations = [1, 4], 1, 3
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or Path("runs") / f"gpu_check-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    steps = []
    wanted = set(args.steps.split(","))
    for name, function in STEPS:
        if name not in wanted:
            continue
        print(f"== {name}", flush=True)
        began = time.perf_counter()
        entry = {"name": name}
        try:
            entry.update(status="passed", **function(args, out))
        except Skip as reason:
            entry.update(status="skipped", summary=str(reason))
        except StepFailed as failure:
            entry.update(status="failed", summary=str(failure), details=failure.details)
        except Exception as error:  # a failed step is reported, the others still run
            entry.update(
                status="failed", summary=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            )
            (out / f"{name}.traceback.txt").write_text(traceback.format_exc())
        entry["seconds"] = round(time.perf_counter() - began, 1)
        print(f"   {entry['status']}: {entry['summary']} ({entry['seconds']:.0f} s)", flush=True)
        steps.append(entry)
    seconds = time.perf_counter() - started
    (out / "summary.json").write_text(
        json.dumps(
            {"smoke": args.smoke, "model": args.model, "rate": args.rate, "seconds": round(seconds, 1), "steps": steps},
            indent=2,
            default=str,
        )
        + "\n"
    )
    text = report(steps, args, out, seconds)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"numbers in {out}/ (summary.md, summary.json, results/ for 'vitprune compare {out}/results --batch 1')")
    return 1 if any(step["status"] == "failed" for step in steps) else 0


if __name__ == "__main__":
    sys.exit(main())
