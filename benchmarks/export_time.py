"""Export time of pruned ViTs (run by hand; timings are not tests).

    python benchmarks/export_time.py --models vit_small_patch16_224 vit_large_patch16_224 --methods none topk-vpa tome

For each model × method: seconds to build + patch the model, to export and check
it (dynamo exporter, onnx.checker, ONNX Runtime parity at batch 1), the file
size, the parity and the MACs ratio. Random weights; files go to a temp folder.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit_small_patch16_224", "vit_large_patch16_224"])
    parser.add_argument("--methods", nargs="+", default=["none", "topk", "topk-vpa", "tome"])
    parser.add_argument("--rate", type=float, default=0.06)
    parser.add_argument("--dynamic-batch", action="store_true")
    args = parser.parse_args()

    import torch

    from vitprune_export import apply_method, export_onnx
    from vitprune_export.pruning.flops import count_macs
    from vitprune_export.pruning.models import create_model

    print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}")
    print("| model | method | build s | export+check s | size MB | parity | MACs ratio |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as folder:
        for model_name in args.models:
            started = time.perf_counter()
            base = create_model(model_name, "random")
            build_seconds = time.perf_counter() - started
            baseline_macs = count_macs(apply_method(copy.deepcopy(base), "none")).macs
            for method in args.methods:
                model = apply_method(copy.deepcopy(base), method, rate=args.rate if method != "none" else None)
                path = Path(folder) / f"{model_name}-{method}.onnx"
                started = time.perf_counter()
                result = export_onnx(model, path, dynamic_batch=args.dynamic_batch, model_name=model_name)
                seconds = time.perf_counter() - started
                ratio = count_macs(model).macs / baseline_macs
                print(
                    f"| {model_name} | {method} | {build_seconds:.1f} | {seconds:.1f} | "
                    f"{result.size_bytes / 1e6:.0f} | {result.parity_max_abs_diff:.1e} | {ratio:.3f} |",
                    flush=True,
                )
                path.unlink()


if __name__ == "__main__":
    main()
