"""Every method × {fp32, fp16} (and the plugin graphs rewritten to standard ops) built with TensorRT for RTX.

Usage (TensorRT for RTX: pip install -e ".[dev]"; builds ahead of time on the CPU, no GPU needed):

    python benchmarks/engine_matrix.py --model deit_tiny_patch16_224 --rate 0.06 --profile rtx-generic \\
        --markdown engines/engine_matrix.md --json engines/engine_matrix.json

Each row: method, graph form, precision, whether it built, build seconds (`vitprune build`, conversion to
fp16 included), engine MB, and what makes the size: the kernels TensorRT for RTX embeds as CUDA C++
source for just-in-time compilation on the GPU (distinct kernel names found in the engine), and the
engine compressed with zlib (level 1). The engines are written to a temporary folder and removed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import zlib
from pathlib import Path

KERNEL_ENTRY = re.compile(rb"__global__[^(]{0,200}?(__myl_\w+)\s*\(")


def embedded_kernels(engine: bytes) -> int:
    """Distinct Myelin kernels whose CUDA source a TensorRT-for-RTX engine carries (one source each)."""
    return len(set(KERNEL_ENTRY.findall(engine)))


def export_forms(model_name: str, method: str, rate: float, weights: str, folder: Path) -> dict[str, Path]:
    """The plain export and, for methods with a plugin, the plugin export rewritten to standard ops."""
    from vitprune_export.export.onnx import export_onnx
    from vitprune_export.export.ops import PLUGIN_OF_METHOD
    from vitprune_export.export.rewrite import rewrite_onnx
    from vitprune_export.pruning.patch import create_pruned

    forms = {}
    model = create_pruned(model_name, method, rate=rate, weights=weights)
    forms["plain"] = folder / f"{method}.onnx"
    export_onnx(model, forms["plain"], dynamic_batch=True, model_name=model_name, check=False)
    if method in PLUGIN_OF_METHOD:
        plugins = folder / f"{method}_plugins.onnx"
        export_onnx(model, plugins, dynamic_batch=True, model_name=model_name, check=False, plugins=True)
        forms["standard"] = folder / f"{method}_standard.onnx"
        rewrite_onnx(plugins, forms["standard"], "standard")
    return forms


def measure(
    model_name: str, rate: float, weights: str, methods: list[str], profile: str, precisions: list[str]
) -> list[dict]:
    import torch

    from vitprune_export.tensorrt.build import build_engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="vitprune-matrix-") as scratch:
        folder = Path(scratch)
        for method in methods:
            torch.manual_seed(0)
            try:
                forms = export_forms(model_name, method, rate, weights, folder)
            except Exception as error:  # the row records it
                rows.append(
                    {
                        "method": method,
                        "form": "plain",
                        "precision": "-",
                        "built": False,
                        "error": f"export: {type(error).__name__}: {str(error).splitlines()[0][:200]}",
                    }
                )
                continue
            for form, onnx_path in forms.items():
                for precision in precisions:
                    row = {"method": method, "form": form, "precision": precision}
                    engine = folder / f"{onnx_path.stem}_{precision}.engine"
                    started = time.perf_counter()
                    try:
                        result = build_engine(onnx_path, profile, output=engine, fp16=precision == "fp16")
                        data = engine.read_bytes()
                        row.update(
                            built=True,
                            seconds=round(result.seconds, 1),
                            mb=round(len(data) / 1e6, 2),
                            kernels=embedded_kernels(data),
                            zlib_mb=round(len(zlib.compress(data, 1)) / 1e6, 2),
                            layers=result.description.get("layers"),
                            keep_counts=result.description["onnx_metadata"].get("keep_counts"),
                        )
                        engine.unlink()
                    except Exception as error:
                        row.update(
                            built=False,
                            seconds=round(time.perf_counter() - started, 1),
                            error=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}",
                        )
                    rows.append(row)
                    print(json.dumps({k: v for k, v in row.items() if k != "keep_counts"}), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| method | graph | precision | built | seconds | MB | kernels embedded | zlib MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if not row.get("built"):
            lines.append(
                f"| {row['method']} | {row['form']} | {row['precision']} | **no**: {row.get('error', '')} | | | | |"
            )
            continue
        lines.append(
            f"| {row['method']} | {row['form']} | {row['precision']} | yes | {row['seconds']:.1f} | "
            f"{row['mb']:.1f} | {row['kernels']} | {row['zlib_mb']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from vitprune_export.pruning.methods import list_methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="deit_tiny_patch16_224")
    parser.add_argument("--rate", type=float, default=0.06)
    parser.add_argument("--weights", default="random")
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--profile", default="rtx-generic")
    parser.add_argument("--precisions", default="fp32,fp16")
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = measure(
        args.model, args.rate, args.weights, args.methods.split(","), args.profile, args.precisions.split(",")
    )
    table = markdown(rows)
    print(table)
    print(f"{sum(r.get('built', False) for r in rows)}/{len(rows)} built in {time.perf_counter() - started:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "rate": args.rate,
                    "weights": args.weights,
                    "profile": args.profile,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if all(row.get("built") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
