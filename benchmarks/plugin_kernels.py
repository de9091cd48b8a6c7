"""Micro-benchmark: each vitprune CUDA kernel (C ABI, as the TensorRT plugin runs it) against the
PyTorch reference decomposition (vitprune_export.export.ops.reference on CUDA tensors), at batch 1 and 32.

    python benchmarks/plugin_kernels.py [--model vit_small|deit_tiny] [--iterations 200] [--json out.json]

Needs an NVIDIA GPU, a CUDA build of PyTorch and nvcc; exits with a clear message otherwise.
Timing: 20 warm-up calls, then CUDA events around each of ``--iterations`` calls; median and p90 in µs.
Shapes are the first pruning layer of the model at rate 0.06 (ViT-S/16: N=197, C=384, D=64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

MODELS = {"vit_small": (197, 384, 64), "deit_tiny": (197, 192, 64)}  # tokens, channels, key dim (head dim)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="vit_small")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "plugin_kernels.py needs an NVIDIA GPU and a CUDA build of PyTorch (torch.cuda.is_available() is False)",
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
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[args.dtype]
    tokens, channels, key_dim = MODELS[args.model]
    prefix, removed = 1, int(0.06 * tokens)
    keep = tokens - prefix - removed
    rows = []
    for batch in (1, 32):
        generator = torch.Generator(device="cuda").manual_seed(0)
        x = torch.randn(batch, tokens, channels, device="cuda", generator=generator, dtype=dtype)
        scores = torch.rand(batch, tokens, device="cuda", generator=generator, dtype=dtype)
        keys = torch.randn(batch, tokens, key_dim, device="cuda", generator=generator, dtype=dtype) + 2
        sizes = torch.ones(batch, tokens, device="cuda", dtype=dtype)
        cases = {
            "VitPruneTopKSelect": (
                lambda: kernels.topk_select(x, scores, prefix, keep),
                lambda: reference.topk_select(x, scores, prefix, keep),
            ),
            "VitPruneVPA": (
                lambda: kernels.vpa(x, scores, keys, sizes, prefix, keep, 0.001),
                lambda: reference.vpa(x, scores, keys, sizes, prefix, keep, 0.001),
            ),
            "VitPruneToMeMerge": (
                lambda: kernels.tome_merge(x, keys, sizes, prefix, removed),
                lambda: reference.tome_merge(x, keys, sizes, prefix, removed),
            ),
        }
        with torch.no_grad():
            for op, (kernel, torch_reference) in cases.items():
                fused, unfused = time_cuda(kernel, args.iterations), time_cuda(torch_reference, args.iterations)
                rows.append(
                    {
                        "op": op,
                        "batch": batch,
                        "kernel_us": fused["median_us"],
                        "kernel_p90_us": fused["p90_us"],
                        "pytorch_us": unfused["median_us"],
                        "pytorch_p90_us": unfused["p90_us"],
                        "speedup": unfused["median_us"] / fused["median_us"],
                    }
                )
    device = torch.cuda.get_device_name(0)
    print(
        f"{device}, {args.model} layer shape N={tokens} C={channels} D={key_dim}, keep {keep} / merge {removed}, {args.dtype}, "
        f"median of {args.iterations} (CUDA events)\n"
    )
    print("| op | batch | kernel µs | PyTorch reference µs | speed-up |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['op']} | {row['batch']} | {row['kernel_us']:.1f} | {row['pytorch_us']:.1f} | {row['speedup']:.1f}× |"
        )
    if args.json:
        from vitprune_export.files import atomic_write_text

        atomic_write_text(
            args.json, json.dumps({"device": device, "model": args.model, "dtype": args.dtype, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
