"""``topk``: keep the tokens the class token attends to most.

Ishibashi & Meng, *Automatic pruning rate adjustment for dynamic token reduction
in vision transformer*, Applied Intelligence 2025, §3.1, Algorithm 1 and Eq. 3:
after attention, ``k = N − ⌊r·N⌋`` tokens survive, ranked by ``Â_c`` (CLS
attention averaged over heads); prefix tokens are always kept (Alg. 1 line 10).
"""

from __future__ import annotations

import torch

from ...export.ops.emit import plugin_mode_active
from . import register_method
from .functional import keep_top_tokens
from .scored import ScoredTokenReduction


@register_method
class TopK(ScoredTokenReduction):
    name = "topk"
    paper = "Ishibashi & Meng 2025, §3.1 Alg. 1"
    summary = "keep the top-scoring tokens after attention"
    tensorrt = "standard ONNX ops (TopK + GatherElements); --plugins: one VitPruneTopKSelect node per layer"

    def reduce(self, x, attention, size, plan):
        keep_patch = plan.tokens_out - plan.num_prefix
        if plugin_mode_active():  # one fused VitPruneTopKSelect node (vitprune_export.export.ops)
            return torch.ops.vitprune.topk_select(x, self.token_scores(x, attention), plan.num_prefix, keep_patch), size
        x, _ = keep_top_tokens(x, self.token_scores(x, attention), plan.num_prefix, keep_patch)
        return x, size
