"""``topk``: keep the tokens the class token attends to most.

Ishibashi & Meng, *Automatic pruning rate adjustment for dynamic token reduction
in vision transformer*, Applied Intelligence 2025, §3.1, Algorithm 1 and Eq. 3:
after attention, ``k = N − ⌊r·N⌋`` tokens survive, ranked by ``Â_c`` (CLS
attention averaged over heads); prefix tokens are always kept (Alg. 1 line 10).
"""

from __future__ import annotations

from . import register_method
from .functional import keep_top_tokens
from .fused import fused_step
from .scored import ScoredTokenReduction


@register_method
class TopK(ScoredTokenReduction):
    name = "topk"
    paper = "Ishibashi & Meng 2025, §3.1 Alg. 1"
    summary = "keep the top-scoring tokens after attention"
    tensorrt = "standard ONNX ops (TopK + GatherElements); --plugin-nodes: one VitPruneTopKSelect node per layer"

    def reduce(self, x, attention, size, plan):
        keep_patch = plan.tokens_out - plan.num_prefix
        fused = fused_step("topk_select")
        if fused is not None:  # one fused VitPruneTopKSelect node
            return fused(x, self.token_scores(x, attention), plan.num_prefix, keep_patch), size
        x, _ = keep_top_tokens(x, self.token_scores(x, attention), plan.num_prefix, keep_patch)
        return x, size
