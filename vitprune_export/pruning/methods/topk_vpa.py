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
from .functional import gather_tokens, rank_patch_positions, unit_rows, vpa_spread_sizes, with_prefix
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
        order = rank_patch_positions(self.token_scores(x, attention), num_prefix)  # best first
        keys = gather_tokens(attention.mean_key, order)
        keys = unit_rows(keys)
        similarity = keys[:, keep_patch:] @ keys[:, :keep_patch].transpose(-2, -1)  # M: removed × kept, cosine
        patch_size = gather_tokens(size, order)
        new_patch_size = vpa_spread_sizes(patch_size[:, :keep_patch], patch_size[:, keep_patch:], similarity, self.tau)
        x = gather_tokens(x, with_prefix(order[:, :keep_patch], num_prefix))
        return x, torch.cat([size[:, :num_prefix], new_patch_size], dim=1)
