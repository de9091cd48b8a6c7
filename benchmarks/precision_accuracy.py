"""Every method in fp32, fp16 and INT8: top-1, top-1 agreement with fp32 PyTorch, kept-token agreement.

For each method: export the pruned model from a checkpoint (fp32 ONNX), convert it to fp16 as the
strongly typed TensorRT builds do (``vitprune_export.export.fp16``), quantize it to INT8 Q/DQ as
``vitprune quantize`` does (calibrated on the training split of ``--data``), and run the three files in
ONNX Runtime on the test split: top-1, the share of images with PyTorch's fp32 top-1, and — for fp16
and INT8 — the kept-token agreement with the fp32 file (``vitprune_export.accuracy.token_agreement``:
per TopK that chooses, the share of fp32's kept tokens kept; per ArgMax, the share of identical choices).

ONNX Runtime's CPU provider runs INT8 Q/DQ graphs with integer kernels and most fp16 ops in fp32 behind
casts (storage precision); a GPU engine is the final word for both.

Usage (after 'vitprune finetune … -o engines/tiny_digits.pt', docs/accuracy.md):

    python benchmarks/precision_accuracy.py --checkpoint engines/tiny_digits.pt --data digits \\
        --markdown engines/precision_accuracy.md
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path


def _top1_and_agreement(path: Path, dataset, reference) -> tuple[float, float]:
    from vitprune_export.accuracy.evaluate import agreement, predict_onnxruntime, top1

    predictions = predict_onnxruntime(path, dataset, batch_size=64, progress=False)
    return top1(predictions, reference[1]), agreement(predictions, reference[0])


def _batches(dataset, batch: int):
    from vitprune_export.accuracy.data import data_loader
    from vitprune_export.accuracy.evaluate import pad_batch

    for images, _ in data_loader(dataset, batch):
        padded, count = pad_batch(images, batch)
        yield padded.numpy(), count


def measure(model_name: str, checkpoint: str, data: str, rate: float, methods: list[str], images: int) -> list[dict]:
    from vitprune_export.accuracy.calibration import calibration_batches, calibration_set
    from vitprune_export.accuracy.data import Preprocessing, load_dataset
    from vitprune_export.accuracy.evaluate import predict_torch
    from vitprune_export.accuracy.token_agreement import kept_token_agreement
    from vitprune_export.export.fp16 import convert_onnx_to_fp16
    from vitprune_export.export.onnx import export_onnx
    from vitprune_export.export.quantize import quantize_onnx
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import apply_method
    from vitprune_export.record import PruningRecord

    rows = []
    with tempfile.TemporaryDirectory(prefix="vitprune-precisions-") as folder:
        for method in methods:
            started = time.perf_counter()
            model = apply_method(create_model(model_name, weights=checkpoint), method, rate=rate)
            dataset = load_dataset(data, "test", Preprocessing.for_model(model))
            reference = predict_torch(model, dataset, 64, False)
            files = {"fp32": Path(folder) / f"{method}.onnx"}
            export_onnx(model, files["fp32"], batch=64, model_name=model_name, check=False)
            files["fp16"] = Path(folder) / f"{method}_fp16.onnx"
            convert_onnx_to_fp16(files["fp32"], files["fp16"], [])
            files["int8"] = Path(folder) / f"{method}_int8.onnx"
            calibration = calibration_set(data, PruningRecord.read(files["fp32"]), images)
            quantize_onnx(files["fp32"], files["int8"], calibration_batches(calibration), data=data)
            for precision, path in files.items():
                top1, agreement = _top1_and_agreement(path, dataset, reference)
                tokens = None
                if precision != "fp32":
                    tokens = kept_token_agreement(files["fp32"], path, _batches(dataset, 64))
                rows.append(
                    {
                        "method": method,
                        "precision": precision,
                        "top1": top1,
                        "agreement": agreement,
                        "kept_tokens": tokens["mean"] if tokens else None,
                        "kept_tokens_worst": min(
                            (entry["agreement"] for entry in tokens["per_selection"]), default=None
                        )
                        if tokens
                        else None,
                    }
                )
            print(f"{method}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return rows


def markdown(rows: list[dict], title: str) -> str:
    lines = [
        f"{title}",
        "",
        "| method | precision | top-1 | top-1 agreement with fp32 PyTorch | kept tokens (mean / worst selection) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        kept = "–" if row["kept_tokens"] is None else f"{row['kept_tokens']:.1%} / {row['kept_tokens_worst']:.1%}"
        if row["kept_tokens"] is not None and row["kept_tokens_worst"] is None:
            kept = f"{row['kept_tokens']:.1%}"
        lines.append(f"| {row['method']} | {row['precision']} | {row['top1']:.1%} | {row['agreement']:.1%} | {kept} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vitprune_tiny_patch4_32")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default="digits")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--methods", default="none,topk,topk-vpa,evit,etps,tome,ppt,atpvit-topk")
    parser.add_argument("--images", type=int, default=256, help="calibration images (training split)")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    rows = measure(args.model, args.checkpoint, args.data, args.rate, args.methods.split(","), args.images)
    text = markdown(rows, f"{args.model} on {args.data}, rate {args.rate:g}, ONNX Runtime CPU")
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
