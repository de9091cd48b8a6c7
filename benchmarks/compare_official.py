"""vitprune's ToMe, PPT, EViT and eTPS against the authors' own code, side by side (run by hand).

    python benchmarks/compare_official.py --tome-repo ~/ext/ToMe --ppt-repo ~/ext/PPT \
        --evit-repo ~/ext/evit --tps-repo ~/ext/TPS-CVPR2023 [--batch 4] [--json out.json]

Get the official code with git (nothing of it is copied into vitprune)::

    git clone https://github.com/facebookresearch/ToMe        # tome/merge.py, tome/patch/timm.py
    git clone https://github.com/xjwu1024/PPT                 # ppt_deit.py (with its own tome.py)
    git clone https://github.com/youweiliang/evit             # evit.py, helpers.py
    git clone https://github.com/megvii-research/TPS-CVPR2023 # torch_codebase/models/dynamic_vit.py

Any repository left out is skipped. Each configuration builds one timm model with seeded random
weights, patches a copy with vitprune (``apply_method(..., schedule=removed)``) and a copy with the
official code given the same removed-token count per block, runs both on the same seeded images
and prints ``max |Δ logits|`` (and, for PPT, how many images pruned rather than pooled in each
reducing block). The official code is imported from the given paths as it is; the only glue:

- ToMe: ``tome.patch.timm.apply_patch(model)``; ``model.r`` = the per-block list.
- PPT: ``ppt_deit.apply_patch(model, pp_loc_list=…, threshold=τ)``; ``model.r`` = the counts of the
  reducing blocks in order (PPT pops one per reducing block), as requested: for PPT's own setting
  (README: ``--r_tokens 50 --pp_loc_list 3 6 9``) 50, 50, 50, which it caps itself to 50, 50, 48;
  vitprune gets the capped schedule (it refuses counts above the cap). PPT's repository carries its
  own ``tome.py``, so the two repositories are imported one after the other, never together.
- EViT: the official ``EViT`` model class with the timm model's weights, ``tokens`` = the patch
  tokens its block keeps (vitprune's count minus the fused token).
- eTPS: the official repository has no eTPS model for PyTorch (its PyTorch code is dTPS, with a
  learned predictor); eTPS is EViT's selection inside the block followed by TPS's squeeze. Here the
  official EViT block selects (``Attention`` returns the kept indices) and the official
  ``TPSModule`` (inference branch) squeezes the removed tokens into their hosts.

timm here is 1.0.x; the official patches were written for timm 0.4.12 but run unchanged on the
plain ViT blocks used here (no LayerScale, no q/k-norm).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import json
import os
import sys
import types
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@contextlib.contextmanager
def imported_from(folder: Path, *names: str):
    """Import top-level modules ``names`` from ``folder``; forget them afterwards (ToMe and PPT both have ``tome``)."""
    forget = ("tome", "ppt_deit", "evit", "helpers", "tps_models")

    def drop():
        for key in list(sys.modules):
            if key.split(".")[0] in forget:
                del sys.modules[key]

    drop()
    sys.path.insert(0, str(folder))
    try:
        yield [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(str(folder))
        drop()


def vitprune_logits(base, method: str, removed: list[int], images, **knobs):
    import torch

    from vitprune_export import apply_method

    model = apply_method(copy.deepcopy(base), method, schedule=removed, **knobs)
    with torch.no_grad():
        return model(images)


# ---------------------------------------------------------------------------------------------- ToMe
def official_tome(repo: Path, base, removed: list[int], images):
    import torch

    with imported_from(repo, "tome.patch.timm") as (patch,):
        model = copy.deepcopy(base)
        patch.apply_patch(model)
        model.r = list(removed)
        with torch.no_grad():
            return model(images)


# ----------------------------------------------------------------------------------------------- PPT
def official_ppt(repo: Path, base, requested: list[int], tau: float, images):
    """``requested``: the count per block as given to the official code, which caps it itself."""
    import torch

    with imported_from(repo, "ppt_deit") as (ppt_deit,):
        model = copy.deepcopy(base)
        blocks = [index for index, count in enumerate(requested) if count > 0]
        ppt_deit.apply_patch(model, prop_attn=True, pp_loc_list=blocks, threshold=tau)
        model.r = [requested[index] for index in blocks]
        with torch.no_grad():
            return model(images)


def ppt_decisions(base, removed: list[int], tau: float, images) -> str:
    """How many images vitprune's PPT prunes (rather than pools) in each reducing block, and how many
    images pool in a block after pruning in an earlier one (where the pruned tokens' order matters)."""
    import torch

    from vitprune_export import apply_method
    from vitprune_export.pruning.methods import ppt

    counts = []
    original = ppt.choose_pruning

    def recording(*args, **kwargs):
        decision = original(*args, **kwargs)
        counts.append(decision.clone())
        return decision

    ppt.choose_pruning = recording
    try:
        model = apply_method(copy.deepcopy(base), "ppt", schedule=removed, tau=tau)
        with torch.no_grad():
            model(images)
    finally:
        ppt.choose_pruning = original
    decisions = torch.stack(counts).int()  # (blocks, images)
    pruned_before = decisions.cummax(dim=0).values
    prune_then_pool = int(((pruned_before[:-1] == 1) & (decisions[1:] == 0)).any(dim=0).sum())
    return f"images pruning per reducing block: {decisions.sum(1).tolist()}; prune then pool: {prune_then_pool}"


# ---------------------------------------------------------------------------------------- EViT, eTPS
def evit_model(evit_module, base, fuse_token: bool):
    """The official EViT class holding the timm model's weights."""
    model = evit_module.EViT(
        img_size=224,
        patch_size=16,
        embed_dim=base.embed_dim,
        depth=len(base.blocks),
        num_heads=base.blocks[0].attn.num_heads,
        mlp_ratio=4,
        qkv_bias=True,
        num_classes=base.num_classes,
        keep_rate=(1,),
        fuse_token=fuse_token,
    )
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    if missing or unexpected:
        raise SystemExit(f"EViT weights do not fit: missing {missing}, unexpected {unexpected}")
    return model.eval()


def kept_patch_tokens(tokens_in: list[int], removed: list[int], extra: int):
    """Per block: the patch tokens the official block keeps (None where nothing is removed)."""
    return [None if count == 0 else tokens - count - 1 - extra for tokens, count in zip(tokens_in, removed)]


def stub_torchprofile() -> None:
    """EViT's ``helpers.py`` imports ``torchprofile`` for its FLOP counter, which inference never calls."""
    if "torchprofile" not in sys.modules and importlib.util.find_spec("torchprofile") is None:
        stub = types.ModuleType("torchprofile")

        def profile_macs(*args, **kwargs):
            raise RuntimeError("torchprofile is not installed")

        stub.profile_macs = profile_macs
        sys.modules["torchprofile"] = stub


def official_evit(repo: Path, base, tokens_in, removed, images):
    import torch

    stub_torchprofile()
    with imported_from(repo, "evit") as (evit,):
        model = evit_model(evit, base, fuse_token=True)
        with torch.no_grad():
            return model(images, tokens=kept_patch_tokens(tokens_in, removed, extra=1))


def load_tps_module(repo: Path):
    """``TPSModule`` from ``torch_codebase/models/dynamic_vit.py`` (a package import for its relative import)."""
    folder = repo / "torch_codebase" / "models"
    package = types.ModuleType("tps_models")
    package.__path__ = [str(folder)]
    sys.modules["tps_models"] = package
    spec = importlib.util.spec_from_file_location("tps_models.dynamic_vit", folder / "dynamic_vit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["tps_models.dynamic_vit"] = module
    spec.loader.exec_module(module)
    return module.TPSModule


def official_etps(evit_repo: Path, tps_repo: Path, base, tokens_in, removed, images):
    import torch

    stub_torchprofile()
    with imported_from(evit_repo, "evit", "helpers") as (evit, helpers):
        tps_module = load_tps_module(tps_repo)()
        tps_module.eval()

        def forward(self, x, keep_rate=None, tokens=None, get_idx=False):
            """Attention (the official module also picks the kept patch tokens), residual, TPS squeeze, MLP."""
            attended, _, kept_index, _, _ = self.attn(self.norm1(x), keep_rate, tokens)
            x = x + self.drop_path(attended)
            if kept_index is not None:
                patches = x[:, 1:]
                removed_index = helpers.complement_idx(kept_index, patches.shape[1])
                rows = lambda index: patches.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # noqa: E731
                x = torch.cat([x[:, :1], tps_module(rows(kept_index), rows(removed_index), None, None, None)], dim=1)
            x = x + self.drop_path(self.mlp(self.norm2(x)))
            return x, x.shape[1] - 1, None

        model = evit_model(evit, base, fuse_token=False)
        for block in model.blocks:
            block.forward = types.MethodType(forward, block)
        with torch.no_grad():
            return model(images, tokens=kept_patch_tokens(tokens_in, removed, extra=0))


# ------------------------------------------------------------------------------------------------ main
def schedule_of(base, method: str, **how) -> tuple[list[int], list[int]]:
    """(tokens entering each block, removed per block) of vitprune's schedule."""
    from vitprune_export import apply_method
    from vitprune_export.pruning.patch import pruning_info

    schedule = pruning_info(apply_method(copy.deepcopy(base), method, **how))["schedule"]
    return list(schedule.tokens_in), list(schedule.removed)


def capped_counts(base, method: str, requested: list[int]) -> list[int]:
    """``requested`` per block, capped as the official code caps silently (ToMe, PPT: half the patch tokens)."""
    from vitprune_export.pruning.methods import get_method
    from vitprune_export.pruning.patch import num_tokens_of

    tokens, prefix, removed = num_tokens_of(base), int(base.num_prefix_tokens), []
    for count in requested:
        removed.append(min(count, get_method(method).max_remove(tokens, prefix)))
        tokens -= removed[-1]
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tome-repo", type=Path)
    parser.add_argument("--ppt-repo", type=Path)
    parser.add_argument("--evit-repo", type=Path)
    parser.add_argument("--tps-repo", type=Path)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--ppt-taus",
        type=float,
        nargs="+",
        default=[7e-5, 8.9e-6, 5.6e-5, 1e-30, 1.0],
        help="PPT thresholds to compare (1e-30: every image prunes, 1: every image pools)",
    )
    parser.add_argument("--seed", type=int, default=0, help="weights and images")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    import torch

    from vitprune_export.pruning.models import create_model

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    images = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
    models = {}

    def model(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in models:
            models[key] = create_model(name, "random", seed=args.seed, **kwargs)
        return models[key]

    rows = []

    def report(method, model_name, setting, removed, ours, theirs, note=""):
        difference = float((ours - theirs).abs().max())
        rows.append(
            {
                "method": method,
                "model": model_name,
                "setting": setting,
                "removed": removed,
                "max_abs_diff_logits": difference,
                "note": note,
            }
        )
        print(f"| {method} | {model_name} | {setting} | {difference:.1e} | {note} |", flush=True)

    print("| method | model | setting | max abs diff logits | note |")
    print("| --- | --- | --- | ---: | --- |")
    vit = "vit_small_patch16_224"
    if args.tome_repo:
        no_class_token = {"class_token": False, "global_pool": "avg"}
        for model_name, kwargs, setting, how in (
            (vit, {}, "rate 0.06", {"rate": 0.06}),
            (vit, {}, "r = 8 every block", {"schedule": [8] * 12}),
            (vit, {}, "r = 13 every block", {"schedule": [13] * 12}),
            ("deit_small_distilled_patch16_224", {}, "r = 13 every block", {"schedule": [13] * 12}),
            ("deit_small_distilled_patch16_224", {}, "rate 0.06", {"rate": 0.06}),
            (vit, no_class_token, "no class token (average pooling), rate 0.06", {"rate": 0.06}),
            (vit, no_class_token, "no class token (average pooling), r = 13 every block", {"schedule": [13] * 12}),
            (vit, no_class_token, "no class token, rate 0.06, --sort-unmerged (a departure)", {"rate": 0.06}),
        ):
            base = model(model_name, **kwargs)
            _, removed = schedule_of(base, "tome", **how)
            knobs = {"sort_unmerged": True} if "--sort-unmerged" in setting else {}
            ours = vitprune_logits(base, "tome", removed, images, **knobs)
            report("tome", model_name, setting, removed, ours, official_tome(args.tome_repo, base, removed, images))
    if args.ppt_repo:
        base = model(vit)
        ppt_readme = [50 if index in (3, 6, 9) else 0 for index in range(12)]  # --r_tokens 50 --pp_loc_list 3 6 9
        _, every_block = schedule_of(base, "ppt", rate=0.06)
        for setting, requested in (
            ("r = 50 at blocks 3, 6, 9 (PPT's evaluation)", ppt_readme),
            ("rate 0.06", every_block),
        ):
            removed = capped_counts(base, "ppt", requested)  # vitprune refuses counts above the cap
            for tau in args.ppt_taus:
                ours = vitprune_logits(base, "ppt", removed, images, tau=tau)
                theirs = official_ppt(args.ppt_repo, base, requested, tau, images)
                pruned = ppt_decisions(base, removed, tau, images)
                report("ppt", vit, f"{setting}, τ = {tau:g}", removed, ours, theirs, pruned)
        for tau in args.ppt_taus[1:3]:  # the departure, where images pool after pruning
            ours = vitprune_logits(base, "ppt", every_block, images, tau=tau, sort_pruned=True)
            theirs = official_ppt(args.ppt_repo, base, every_block, tau, images)
            report("ppt", vit, f"rate 0.06, τ = {tau:g}, --sort-pruned (a departure)", every_block, ours, theirs)
    if args.evit_repo:
        base = model(vit)
        tokens_in, removed = schedule_of(base, "evit", rate=0.06)
        ours = vitprune_logits(base, "evit", removed, images)
        report("evit", vit, "rate 0.06", removed, ours, official_evit(args.evit_repo, base, tokens_in, removed, images))
        if args.tps_repo:
            tokens_in, removed = schedule_of(base, "etps", rate=0.06)
            ours = vitprune_logits(base, "etps", removed, images)
            theirs = official_etps(args.evit_repo, args.tps_repo, base, tokens_in, removed, images)
            report("etps", vit, "rate 0.06", removed, ours, theirs)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
