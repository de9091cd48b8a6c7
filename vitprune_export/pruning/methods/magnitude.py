"""``magnitude``: ablation that keeps the tokens with the largest L2 norm.

Ishibashi & Meng 2025, §4.1.4 (comparison pruning methods: Magnitude). Needs no
class token.
"""

from __future__ import annotations

from . import register_method
from .base import TokenReduction
from .functional import keep_top_tokens, row_norm


@register_method
class Magnitude(TokenReduction):
    name = "magnitude"
    paper = "Ishibashi & Meng 2025, §4.1.4"
    summary = "ablation: keep the tokens with the largest L2 norm"
    tensorrt = "standard ONNX ops"

    def reduce(self, x, attention, size, plan):
        keep_patch = plan.tokens_out - plan.num_prefix
        x, _ = keep_top_tokens(x, row_norm(x).squeeze(-1), plan.num_prefix, keep_patch)
        return x, size
