"""``evit``: keep the attentive tokens, fuse the inattentive ones into one.

EViT (Liang et al., *Not All Patches are What You Need*, ICLR 2022), as restated
in the ATPViT paper (Kusaki, Ishibashi & Meng), §2.2.2 Eq. 1–3: the class token's
attention ``a_i`` (mean over heads) ranks the tokens, the top ones are kept, and
the inattentive ones are fused into a single token ``x_fused = Σ_i a_i x_i``
weighted by that attention (not re-normalised, as in EViT). Other ``--score``
choices are first scaled to sum to 1 over all tokens, like attention
probabilities. To match Top-K's count, one fewer token is kept: a block that
removes ``m`` tokens keeps ``N − m − 1`` and appends the fused one.
"""

from __future__ import annotations

import torch

from . import register_method
from .functional import gather_tokens, rank_patch_positions, with_prefix
from .scored import ScoredTokenReduction


def fuse_tokens(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_i w_i x_i`` over dim 1: (B, R, C), (B, R) → (B, 1, C) (ATPViT paper §2.2.2, EViT's fused token)."""
    return weights.unsqueeze(1) @ tokens


def attention_like(scores: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale scores (B, N) to sum to 1 over all tokens; CLS attention already does."""
    return scores / scores.sum(dim=-1, keepdim=True).clamp_min(eps)


@register_method
class EViT(ScoredTokenReduction):
    name = "evit"
    paper = "Liang et al. ICLR'22; ATPViT paper Eq. 2"
    summary = "keep top tokens, fuse the removed ones (plus one) into a single weighted token"
    tensorrt = "standard ONNX ops"

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        keep_patch = plan.tokens_out - num_prefix - 1  # one slot for the fused token
        scores = attention_like(self.token_scores(x, attention))
        order = rank_patch_positions(scores, num_prefix)
        removed = order[:, keep_patch:]
        fused = fuse_tokens(gather_tokens(x, removed), gather_tokens(scores, removed))
        return torch.cat([gather_tokens(x, with_prefix(order[:, :keep_patch], num_prefix)), fused], dim=1), size
