"""fp16 vs fp32 agreement of every method's graph, as TensorRT's strongly typed builders get it.

For each method: export the pruned model (static keep counts), convert the ONNX to fp16 exactly as
``vitprune build --fp16`` does for TensorRT 11 / TensorRT for RTX (vitprune_export.export.fp16: LayerNorm,
Softmax, token scores and merge divisions kept fp32), run both graphs in ONNX Runtime on the CPU and
compare: the largest |Δlogit| (also relative to the largest fp32 logit), top-1 agreement of the fp16
graph with the fp32 graph, and — on labelled data — both graphs' top-1 accuracy.

ONNX Runtime's CPU provider has fp16 kernels for few ops; for the rest it inserts casts and computes in
fp32 (its InsertCastTransformer). So the numbers measure the fp16 *storage* of weights and activations
between ops — what the strongly typed TensorRT engine stores — not fp16 arithmetic inside the GEMMs
(TensorRT accumulates fp16 GEMMs in fp32). A GPU run of the engines is the final word (gpu_check.py).

Usage:

    # a trained tiny ViT on the bundled digits (vitprune finetune … -o engines/tiny_digits.pt, docs/accuracy.md)
    python benchmarks/fp16_agreement.py --model vitprune_tiny_patch4_32 --checkpoint engines/tiny_digits.pt \\
        --data digits --rate 0.1 --markdown engines/fp16_tiny.md --json engines/fp16_tiny.json
    # a 12-block ViT, random weights, fixed random images
    python benchmarks/fp16_agreement.py --model deit_tiny_patch16_224 --weights random --images 32 --rate 0.06
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def _inputs(model, data: str | None, images: int, seed: int):
    """(images as a float32 array, labels or None)."""
    import numpy as np
    import torch

    if data:
        from vitprune_export.accuracy.data import Preprocessing, load_dataset

        dataset = load_dataset(data, "test", Preprocessing.for_model(model))
        batch = torch.stack([dataset[i][0] for i in range(len(dataset))]).numpy().astype(np.float32)
        labels = np.array([int(dataset[i][1]) for i in range(len(dataset))])
        return batch, labels
    from vitprune_export.export.onnx import input_size_of

    shape = (images, *input_size_of(model))
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32), None


def _run(path: Path, images, batch: int):
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + batch]})[0] for i in range(0, len(images), batch)])


def measure(
    model_name: str, weights: str, methods: list[str], rate: float, data: str | None, images: int, batch: int, seed: int
) -> list[dict]:
    import copy

    import numpy as np
    import torch

    from vitprune_export.export.fp16 import convert_onnx_to_fp16
    from vitprune_export.export.onnx import export_onnx
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import apply_method

    torch.manual_seed(seed)
    base = create_model(model_name, weights).eval()
    inputs, labels = _inputs(base, data, images, seed)
    rows = []
    with tempfile.TemporaryDirectory(prefix="vitprune-fp16-") as folder:
        for method in methods:
            started = time.perf_counter()
            row = {"method": method}
            try:
                model = apply_method(copy.deepcopy(base), method, rate=rate).eval()
                fp32 = Path(folder) / f"{method}.onnx"
                fp16 = Path(folder) / f"{method}_fp16.onnx"
                export_onnx(model, fp32, dynamic_batch=True, model_name=model_name, check=False)
                report = convert_onnx_to_fp16(fp32, fp16, [])
                reference, converted = _run(fp32, inputs, batch), _run(fp16, inputs, batch)
                delta = np.abs(reference - converted)
                row.update(
                    images=len(inputs),
                    max_abs_delta=float(delta.max()),
                    mean_abs_delta=float(delta.mean()),
                    max_abs_logit=float(np.abs(reference).max()),
                    top1_agreement=float((reference.argmax(1) == converted.argmax(1)).mean()),
                    fp32_nodes=report.fp32_nodes,
                    fp16_nodes=report.fp16_nodes,
                    casts=report.casts_added,
                )
                row["relative_max_delta"] = row["max_abs_delta"] / row["max_abs_logit"]
                if labels is not None:
                    row["top1_fp32"] = float((reference.argmax(1) == labels).mean())
                    row["top1_fp16"] = float((converted.argmax(1) == labels).mean())
            except Exception as error:  # a benchmark row records the failure and goes on
                row["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], labelled: bool) -> str:
    head = "| method | max \\|Δlogit\\| | relative to max \\|logit\\| | mean \\|Δlogit\\| | top-1 agreement |"
    rule = "| --- | --- | --- | --- | --- |"
    if labelled:
        head += " top-1 fp32 | top-1 fp16 |"
        rule += " --- | --- |"
    head += " nodes fp32 / fp16, casts |"
    rule += " --- |"
    lines = [head, rule]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['method']} | failed: {row['error']} |")
            continue
        line = (
            f"| {row['method']} | {row['max_abs_delta']:.2e} | {100 * row['relative_max_delta']:.2f} % | "
            f"{row['mean_abs_delta']:.1e} | {100 * row['top1_agreement']:.1f} % ({row['images']}) |"
        )
        if labelled:
            line += f" {100 * row['top1_fp32']:.2f} % | {100 * row['top1_fp16']:.2f} % |"
        line += f" {row['fp32_nodes']} / {row['fp16_nodes']}, {row['casts']} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from vitprune_export.pruning.methods import list_methods

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vitprune_tiny_patch4_32")
    parser.add_argument("--checkpoint", default=None, help="weights file (vitprune finetune); else --weights")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--methods", default=",".join(list_methods()))
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--data", default=None, help="digits, digits-canvas or an ImageFolder; else random images")
    parser.add_argument("--images", type=int, default=32, help="random images when --data is not given")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    rows = measure(
        args.model,
        args.checkpoint or args.weights,
        args.methods.split(","),
        args.rate,
        args.data,
        args.images,
        args.batch,
        args.seed,
    )
    table = markdown(rows, labelled=args.data is not None)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "model": args.model,
                    "weights": args.checkpoint or args.weights,
                    "rate": args.rate,
                    "data": args.data,
                    "rows": rows,
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if any("error" in row for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
