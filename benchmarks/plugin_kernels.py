"""Micro-benchmark: each vitprune CUDA kernel (C ABI, as the TensorRT plugin runs it) against the
PyTorch reference decomposition (vitprune_export.export.ops.reference on CUDA tensors), at batch 1 and 32,
with the kernel launches each plugin call makes.

    python benchmarks/plugin_kernels.py [--model vit_small|deit_tiny] [--dtype fp32|fp16|fp16-fp32]
                                        [--iterations 200] [--json out.json] [--launches-only]

``--dtype fp16-fp32`` is what TensorRT runs under fp16: fp16 tokens, fp32 scores, keys and sizes (the
``vitprune*Typed`` entry points). Launches per call come from the launchers' own plans
(plugins/common/vitpruneKernelMath.h, compiled here with g++); ``--launches-only`` prints them without a GPU.
On a GPU each op's kernels are also counted with the PyTorch profiler over one call, and timed:
20 warm-up calls, then CUDA events around each of ``--iterations`` calls; median and p90 in µs.
Shapes are the first pruning layer of the model at rate 0.06 (ViT-S/16: N=197, C=384, D=64).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODELS = {"vit_small": (197, 384, 64), "deit_tiny": (197, 192, 64)}  # tokens, channels, key dim (head dim)
BATCHES = (1, 32)
#: element bytes of the tokens and of the side inputs (scores, keys, sizes) per --dtype
DTYPES = {"fp32": (4, 4), "fp16": (2, 2), "fp16-fp32": (2, 4)}

PLAN_PROBE = r"""
#include "common/vitpruneKernelMath.h"
#include <cstdio>
int main(int argc, char** argv)
{
    (void)argc;
    int const batch = std::atoi(argv[1]), tokens = std::atoi(argv[2]), dim = std::atoi(argv[3]);
    int const prefix = std::atoi(argv[4]), keep = std::atoi(argv[5]), merges = std::atoi(argv[6]);
    int const keyBytes = std::atoi(argv[7]);
    vitprune::VPAPlan const vpa = vitprune::vpaPlan(batch, tokens - prefix, dim, keep, keyBytes);
    vitprune::ToMePlan const tome = vitprune::tomePlan(batch, tokens, dim, prefix, merges, keyBytes);
    std::printf("VitPruneTopKSelect %d 0\n", vitprune::topkSelectPlan(batch).launches());
    std::printf("VitPruneVPA %d %d\n", vpa.launches(), vpa.oneBlock ? 1 : 0);
    std::printf("VitPruneToMeMerge %d %d\n", tome.launches(), tome.oneBlock ? 1 : 0);
    return 0;
}
"""


def planned_launches(batch, tokens, key_dim, prefix, keep, merges, key_bytes) -> dict[str, tuple[int, bool]]:
    """{op: (launches per call, one-block path)} from the launchers' plans, compiled from the plugin headers."""
    from vitprune_export.resources import plugin_sources_dir

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        raise RuntimeError("launches per call need a host C++ compiler (g++)")
    folder = Path(tempfile.mkdtemp(prefix="vitprune-plans-"))
    (folder / "plans.cpp").write_text(PLAN_PROBE.replace("#include <cstdio>", "#include <cstdio>\n#include <cstdlib>"))
    command = [
        compiler,
        "-std=c++17",
        f"-I{plugin_sources_dir()}",
        str(folder / "plans.cpp"),
        "-o",
        str(folder / "plans"),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    numbers = map(str, (batch, tokens, key_dim, prefix, keep, merges, key_bytes))
    lines = subprocess.run([str(folder / "plans"), *numbers], check=True, capture_output=True, text=True).stdout
    return {op: (int(count), flag == "1") for op, count, flag in (line.split() for line in lines.splitlines())}


def time_cuda(fn, iterations: int, warmup: int = 20) -> dict:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iterations):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1000.0)
    samples.sort()
    return {"median_us": statistics.median(samples), "p90_us": samples[int(0.9 * (len(samples) - 1))]}


def profiled_launches(fn) -> int:
    """CUDA kernels one call of ``fn`` launches, as the PyTorch profiler (CUPTI) sees them."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as trace:
        fn()
        torch.cuda.synchronize()
    return sum(1 for event in trace.events() if event.device_type == torch.autograd.DeviceType.CUDA)


def typed_calls(kernels, x, scores, keys, sizes, prefix, keep, removed):
    """The three ops through the vitprune*Typed entry points: tokens in x's type, the side inputs in theirs."""
    import torch

    codes = {torch.float32: 0, torch.float16: 1}
    batch, tokens, channels = x.shape
    tokens_type, side_type = codes[x.dtype], codes[scores.dtype]
    lib = kernels.lib

    def pointer(tensor):
        return ctypes.c_void_p(tensor.data_ptr())

    def stream():
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)

    kept = x.new_empty(batch, prefix + keep, channels)
    kept_sizes = sizes.new_empty(batch, prefix + keep)
    merged = x.new_empty(batch, tokens - removed, channels)
    merged_sizes = sizes.new_empty(batch, tokens - removed)
    workspace = kernels.workspace(
        max(
            lib.vitpruneVPAWorkspaceSize(batch, tokens, prefix),
            lib.vitpruneToMeMergeWorkspaceSize(batch, tokens, prefix),
        )
    )
    ws = pointer(workspace)
    shape = (batch, tokens, channels)
    return {
        "VitPruneTopKSelect": lambda: lib.vitpruneTopKSelectTyped(
            pointer(x), pointer(scores), pointer(kept), ws, *shape, prefix, keep, tokens_type, side_type, stream()
        ),
        "VitPruneVPA": lambda: lib.vitpruneVPATyped(
            pointer(x),
            pointer(scores),
            pointer(keys),
            pointer(sizes),
            pointer(kept),
            pointer(kept_sizes),
            ws,
            *shape,
            keys.shape[2],
            prefix,
            keep,
            ctypes.c_float(0.001),
            tokens_type,
            side_type,
            stream(),
        ),
        "VitPruneToMeMerge": lambda: lib.vitpruneToMeMergeTyped(
            pointer(x),
            pointer(keys),
            pointer(sizes),
            pointer(merged),
            pointer(merged_sizes),
            ws,
            *shape,
            keys.shape[2],
            prefix,
            removed,
            tokens_type,
            side_type,
            stream(),
        ),
    }


def print_launches(args, shape) -> list[dict]:
    tokens, channels, key_dim, prefix, keep, removed = shape
    key_bytes = DTYPES[args.dtype][1]
    rows = []
    for batch in BATCHES:
        for op, (launches, one_block) in planned_launches(
            batch, tokens, key_dim, prefix, keep, removed, key_bytes
        ).items():
            rows.append({"op": op, "batch": batch, "launches": launches, "one_block": one_block})
    print(f"launches per plugin call, {args.model} layer N={tokens} D={key_dim}, keys {args.dtype.split('-')[-1]}:")
    for row in rows:
        path = "one block per image" if row["one_block"] else "multi-launch path"
        path = "one block per token" if row["op"] == "VitPruneTopKSelect" else path
        print(f"  {row['op']:<20} batch {row['batch']:>2}: {row['launches']} ({path})")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="vit_small")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--launches-only", action="store_true", help="print launches per call and stop (no GPU)")
    args = parser.parse_args()

    tokens, channels, key_dim = MODELS[args.model]
    prefix, removed = 1, int(0.06 * tokens)
    keep = tokens - prefix - removed
    planned = print_launches(args, (tokens, channels, key_dim, prefix, keep, removed))
    if args.launches_only:
        return 0

    import torch

    if not torch.cuda.is_available():
        print(
            "plugin_kernels.py needs an NVIDIA GPU and a CUDA build of PyTorch (torch.cuda.is_available() is False);"
            " --launches-only prints the launches without one",
            file=sys.stderr,
        )
        return 2
    from vitprune_export.export.ops import reference
    from vitprune_export.export.ops.kernels import KernelABI, build_kernel_library
    from vitprune_export.export.ops.plugin_library import find_nvcc

    if find_nvcc() is None:
        print("plugin_kernels.py needs nvcc (the CUDA toolkit) to build the kernels", file=sys.stderr)
        return 2
    kernels = KernelABI(build_kernel_library(Path(tempfile.mkdtemp(prefix="vitprune-kernels-"))))
    for name in ("vitpruneTopKSelectTyped", "vitpruneVPATyped", "vitpruneToMeMergeTyped"):
        getattr(kernels.lib, name).restype = ctypes.c_int
    dtype_of = {4: torch.float32, 2: torch.float16}
    token_bytes, side_bytes = DTYPES[args.dtype]
    rows = []
    for batch in BATCHES:
        generator = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(batch, tokens, channels, device="cuda", generator=generator).to(dtype_of[token_bytes])
        scores = torch.rand(batch, tokens, device="cuda", generator=generator).to(dtype_of[side_bytes])
        keys = (torch.randn(batch, tokens, key_dim, device="cuda", generator=generator) + 2).to(dtype_of[side_bytes])
        sizes = torch.ones(batch, tokens, device="cuda", dtype=dtype_of[side_bytes])
        calls = typed_calls(kernels, x, scores, keys, sizes, prefix, keep, removed)
        # the reference decomposition runs in one type, the tokens' (as the standard-op graph would)
        ref_scores, ref_keys, ref_sizes = (tensor.to(x.dtype) for tensor in (scores, keys, sizes))
        references = {
            "VitPruneTopKSelect": lambda: reference.topk_select(x, ref_scores, prefix, keep),
            "VitPruneVPA": lambda: reference.vpa(x, ref_scores, ref_keys, ref_sizes, prefix, keep, 0.001),
            "VitPruneToMeMerge": lambda: reference.tome_merge(x, ref_keys, ref_sizes, prefix, removed),
        }
        with torch.no_grad():
            for op, kernel in calls.items():
                plan = next(row for row in planned if row["op"] == op and row["batch"] == batch)
                fused, unfused = time_cuda(kernel, args.iterations), time_cuda(references[op], args.iterations)
                rows.append(
                    {
                        "op": op,
                        "batch": batch,
                        "launches": plan["launches"],
                        "one_block": plan["one_block"],
                        "profiled_launches": profiled_launches(kernel),
                        "pytorch_launches": profiled_launches(references[op]),
                        "kernel_us": fused["median_us"],
                        "kernel_p90_us": fused["p90_us"],
                        "pytorch_us": unfused["median_us"],
                        "pytorch_p90_us": unfused["p90_us"],
                        "speedup": unfused["median_us"] / fused["median_us"],
                    }
                )
    device = torch.cuda.get_device_name(0)
    print(
        f"\n{device}, {args.model} layer shape N={tokens} C={channels} D={key_dim}, keep {keep} / merge {removed}, "
        f"{args.dtype}, median of {args.iterations} (CUDA events)\n"
    )
    print(
        "| op | batch | launches (plan / profiled) | kernel µs | PyTorch launches | PyTorch reference µs | speed-up |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['op']} | {row['batch']} | {row['launches']} / {row['profiled_launches']} | {row['kernel_us']:.1f} | "
            f"{row['pytorch_launches']} | {row['pytorch_us']:.1f} | {row['speedup']:.1f}× |"
        )
    if args.json:
        from vitprune_export.files import atomic_write_text

        atomic_write_text(
            args.json, json.dumps({"device": device, "model": args.model, "dtype": args.dtype, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
