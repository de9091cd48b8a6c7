"""MACs ratio of every registered method at one rate (analytic; run by hand).

python benchmarks/flops_table.py --model vit_small_patch16_224 --rate 0.06
"""

from __future__ import annotations

import argparse
import copy
import os
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="vit_small_patch16_224")
    parser.add_argument("--rate", type=float, default=0.06)
    args = parser.parse_args()

    from vitprune_export import apply_method, keep_counts, list_methods
    from vitprune_export.pruning.flops import count_macs
    from vitprune_export.pruning.models import create_model

    base = create_model(args.model, "random")
    baseline = count_macs(apply_method(copy.deepcopy(base), "none")).macs
    print(f"{args.model}, rate {args.rate}, unpruned {baseline / 1e9:.3f} GMACs\n")
    print("| method | GMACs | ratio | tokens after the last block |")
    print("| --- | ---: | ---: | ---: |")
    for method in list_methods():
        model = apply_method(copy.deepcopy(base), method, rate=args.rate)
        macs = count_macs(model).macs
        print(f"| {method} | {macs / 1e9:.3f} | {macs / baseline:.3f} | {keep_counts(model)[-1]} |")


if __name__ == "__main__":
    main()
