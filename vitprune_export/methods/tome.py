"""``tome``: Token Merging.

Bolya et al., *Token Merging: Your ViT but Faster*, ICLR 2023, §3: bipartite
soft matching on the keys (mean over heads) merges ``r`` pairs per block by a
size-weighted average, and proportional attention adds ``log s`` to attention
so a merged token counts as the tokens it stands for.

As the official ``tome/merge.py``: the A/B split alternates over all tokens with
the class token first in A; prefix tokens never merge and stay first; ``r`` is
capped at ``⌊(N − P)/2⌋`` (see :func:`.functional.bipartite_soft_matching`).
"""

from __future__ import annotations

import torch

from ..ops.emit import plugin_mode_active
from . import register_method
from .base import TokenReduction
from .functional import merge_bipartite


@register_method
class ToMe(TokenReduction):
    name = "tome"
    paper = "Bolya et al. ICLR'23, §3"
    summary = "bipartite soft matching on keys, size-weighted merge, proportional attention"
    tracks_size = True
    tensorrt = "standard ONNX ops (one-hot MatMul merge); --plugins: one VitPruneToMeMerge node per layer"

    def max_remove(self, tokens_in: int, num_prefix: int) -> int:
        return (tokens_in - num_prefix) // 2

    def cap_remove(self, tokens_in: int, num_prefix: int, remove: int) -> int:
        return min(remove, self.max_remove(tokens_in, num_prefix))

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        if size is None:
            size = x.new_ones(x.shape[:2])
        if plugin_mode_active():  # one fused VitPruneToMeMerge node (vitprune_export.ops)
            return torch.ops.vitprune.tome_merge(x, attention.mean_key, size, num_prefix, plan.remove)
        return merge_bipartite(x, attention.mean_key, size, num_prefix, plan.remove)
