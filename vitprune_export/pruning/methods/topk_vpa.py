"""``topk-vpa``: Top-K with variable proportional attention (VPA).

Ishibashi & Meng 2025, §3.2, Eq. 2, 4 and 5. Every token carries a size ``s``
(ones at the start); attention adds ``log s`` (Eq. 2). When a block removes
tokens, each removed token's size is spread over the kept patch tokens by
``softmax(M / (Σ_j M_ij · τ))`` with ``M`` the cosine similarity of removed and
kept keys (mean over heads), Eq. 4–5; sizes are conserved. Prefix tokens keep
size 1 (as ToMe protects the class token). ``τ = 0.001`` for vanilla ViT.
"""

from __future__ import annotations

import torch

from . import register_method
from .base import Knob, check_positive
from .functional import (
    cosine_similarity_matrix,
    gather_patches,
    gather_prefix_and_patches,
    rank_patch_tokens,
    vpa_spread_sizes,
)
from .fused import fused_step
from .scored import SCORE_KNOB, ScoredTokenReduction


@register_method
class TopKVPA(ScoredTokenReduction):
    name = "topk-vpa"
    paper = "Ishibashi & Meng 2025, §3.2 Eq. 4-5"
    summary = "Top-K; removed tokens' sizes spread to similar kept tokens (log s in attention)"
    knobs = (Knob("tau", 0.001, "base temperature τ of Eq. 5 (0.001 for vanilla ViT)"), SCORE_KNOB)
    tracks_size = True
    tensorrt = "standard ONNX ops; --plugin-nodes: one VitPruneVPA node per layer"

    def validate(self) -> None:
        check_positive("tau", self.tau)

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        keep_patch = plan.tokens_out - num_prefix
        if size is None:
            size = x.new_ones(x.shape[:2])
        fused = fused_step("vpa")
        if fused is not None:  # one fused VitPruneVPA node
            return fused(
                x, self.token_scores(x, attention), attention.mean_key, size, num_prefix, keep_patch, float(self.tau)
            )
        order = rank_patch_tokens(self.token_scores(x, attention), num_prefix)
        kept, removed = order[:, :keep_patch], order[:, keep_patch:]

        keys = attention.mean_key
        similarity = cosine_similarity_matrix(
            gather_patches(keys, removed, num_prefix), gather_patches(keys, kept, num_prefix)
        )
        new_patch_size = vpa_spread_sizes(
            gather_patches(size, kept, num_prefix), gather_patches(size, removed, num_prefix), similarity, self.tau
        )
        x = gather_prefix_and_patches(x, kept, num_prefix)
        return x, torch.cat([size[:, :num_prefix], new_patch_size], dim=1)
