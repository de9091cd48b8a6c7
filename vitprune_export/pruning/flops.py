"""Analytic multiply-accumulates (MACs) and parameters of a pruned ViT.

Counted per block from the static schedule: QKV and output projections
(``4·N·C²``), ``QKᵀ`` and ``A·V`` (``2·N²·C``) on the ``N`` tokens that enter the
block, the MLP (``2·N'·C·C_hidden``) on the ``N'`` tokens left after reduction,
plus patch embedding and head. Methods that change the attention itself
(ATPViT, BSPF) override :meth:`TokenReduction.block_macs`. The small cost of
scoring, matching and merging is left out, as in the papers' FLOPs columns.
Unpruned ``vit_small_patch16_224``: 4.6 G.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .methods.base import LayerPlan
from .patch import pruning_info


@dataclass(frozen=True)
class MacCount:
    macs: int
    params: int
    per_block: tuple[int, ...]

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def _mlp_hidden(block) -> int:
    return int(block.mlp.fc1.out_features)


def count_macs(model: torch.nn.Module, unpruned: bool = False) -> MacCount:
    """MACs of one image through a patched model (``apply_method`` first).

    ``unpruned=True`` counts the same model as if no token were removed (the baseline).
    """
    info = pruning_info(model)
    method, schedule = info["method"], info["schedule"]
    if unpruned:
        from .methods import get_method
        from .schedule import build_schedule

        method = get_method("none")
        schedule = build_schedule(schedule.tokens_in[0], schedule.num_prefix, schedule.depth)
    dim = int(model.embed_dim)
    patch = model.patch_embed
    in_channels = int(patch.proj.in_channels)
    kernel = patch.proj.kernel_size
    embed = int(patch.num_patches) * dim * in_channels * int(kernel[0]) * int(kernel[1])
    per_block = []
    for layer, block in enumerate(model.blocks):
        plan = LayerPlan(layer, schedule.tokens_in[layer], schedule.removed[layer], schedule.num_prefix)
        per_block.append(method.block_macs(dim, _mlp_hidden(block), plan))
    head = model.head
    head_macs = int(head.in_features * head.out_features) if isinstance(head, torch.nn.Linear) else 0
    params = sum(p.numel() for p in model.parameters())
    return MacCount(macs=embed + sum(per_block) + head_macs, params=int(params), per_block=tuple(per_block))
