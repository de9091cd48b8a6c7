"""How often float near-ties make ONNX Runtime and PyTorch disagree on a token order (run by hand).

    python benchmarks/near_ties.py parity --method tome --no-class-token [--sort-unmerged] --seeds 0 1
    python benchmarks/near_ties.py parity --method ppt --tau 8.9e-6 --seeds 1 [--sort-pruned]
    python benchmarks/near_ties.py pruned-order --seeds 0 1

``parity``: exports ``vit_small_patch16_224`` (12 blocks, random weights of each seed, rate 0.06,
dynamic batch) and prints max |PyTorch − ONNX Runtime| on six image batches (sizes 1, 3, 1, 4, 8, 8;
image seeds 0, 0, 1, 2, 3, 4). ``pruned-order``: PPT with every block pruning, run in float32 and
in float64 on 8 images; counts the image-blocks whose kept tokens are the same but ordered
differently — a proxy for what another runtime's rounding can do to the score order — and the
smallest gap between neighbouring kept scores.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
BATCHES = [(1, 0), (3, 0), (1, 1), (4, 2), (8, 3), (8, 4)]  # (batch size, image seed)


def parity_sweep(args) -> None:
    from vitprune_export import apply_method, export_onnx
    from vitprune_export.export.onnx import parity
    from vitprune_export.pruning.models import create_model

    model_kwargs = {"class_token": False, "global_pool": "avg"} if args.no_class_token else {}
    knobs = {}
    if args.method == "tome":
        knobs["sort_unmerged"] = args.sort_unmerged
    if args.method == "ppt":
        knobs.update(tau=args.tau, sort_pruned=args.sort_pruned)
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            base = create_model("vit_small_patch16_224", "random", seed=seed, **model_kwargs)
            model = apply_method(copy.deepcopy(base), args.method, rate=0.06, **knobs)
            path = Path(folder) / "model.onnx"
            export_onnx(model, path, dynamic_batch=True, check=False)
            diffs = [parity(model, path, batch=batch, seed=image_seed) for batch, image_seed in BATCHES]
            print(f"{args.method} {knobs} weights seed {seed}: " + " ".join(f"{d:.1e}" for d in diffs), flush=True)


def pruned_order(args) -> None:
    import torch

    from vitprune_export import apply_method
    from vitprune_export.pruning.methods import ppt
    from vitprune_export.pruning.models import create_model

    def kept(model, images):
        recorded, original = [], ppt.top_patch_tokens

        def recording(scores, num_prefix, keep):
            index = original(scores, num_prefix, keep)
            best = scores[:, num_prefix:].gather(1, index)
            recorded.append((index, (best[:, :-1] - best[:, 1:]).min(dim=-1).values))
            return index

        ppt.top_patch_tokens = recording
        try:
            with torch.no_grad():
                model(images)
        finally:
            ppt.top_patch_tokens = original
        return recorded

    blocks = reordered = 0
    smallest_gap = float("inf")
    for seed in args.seeds:
        base = create_model("vit_small_patch16_224", "random", seed=seed)
        images = torch.randn(8, 3, 224, 224, generator=torch.Generator().manual_seed(seed))
        single = kept(apply_method(copy.deepcopy(base), "ppt", rate=0.06, tau=1e-30), images)
        double = kept(apply_method(copy.deepcopy(base).double(), "ppt", rate=0.06, tau=1e-30), images.double())
        for (index32, gaps), (index64, _) in zip(single, double):
            smallest_gap = min(smallest_gap, float(gaps.min()))
            for a, b in zip(index32.tolist(), index64.tolist()):
                blocks += 1
                reordered += set(a) == set(b) and a != b
    print(f"image-blocks {blocks}, same kept tokens in another order {reordered}, smallest gap {smallest_gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("parity")
    sweep.add_argument("--method", choices=["tome", "ppt"], required=True)
    sweep.add_argument("--no-class-token", action="store_true", help="global average pooling, no prefix tokens")
    sweep.add_argument("--sort-unmerged", action="store_true")
    sweep.add_argument("--sort-pruned", action="store_true")
    sweep.add_argument("--tau", type=float, default=7e-5)
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0])
    order = commands.add_parser("pruned-order")
    order.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.command == "parity":
        parity_sweep(args)
    else:
        pruned_order(args)


if __name__ == "__main__":
    main()
