"""``atpvit-topk`` and ``atpvit-evit``: token pruning inside the attention mechanism.

Kusaki, Ishibashi & Meng, *Token Pruning within the Attention Mechanism for
Efficient Vision Transformers* (ATPViT).

§3.1 (ATPViT-TopK): the importance of every query row of ``QKᵀ`` is scored (CLS
attention, mean over heads, by default — "any arbitrary method" works, so
``--score`` picks one), the top rows are kept and only those go through
``softmax·V`` (Eq. 4) and the output projection; the residual adds the input
tokens gathered with the same indices, and the MLP runs on the kept tokens.
Keys and values of that layer still see every token. Rows of ``QKᵀ`` are
independent, so selecting the query rows *before* the product gives the same
numbers and also saves the pruned rows of ``QKᵀ``.

§3.2, Eq. 5 (ATPViT-EViT / "Merge"): the removed rows are fused into one
attention row ``a_fused = Σ_{i∈R} (s_i / Σ_{j∈R} s_j) a_i`` weighted by their
normalised importance, concatenated to the kept rows; the residual adds the
matching fused input token ``Σ_i w_i x_i``. ``a_i`` is the softmax row (the
"attention vector" of Eq. 4), so the removed rows' ``QKᵀ`` is computed, but
``·V`` and the projection run once for the fused row. One fewer row is kept, so
the count matches Top-K (as for ``evit``).

Consequence worth knowing: ATPViT-TopK's output equals that of post-attention
pruning with the same score (``topk``), because the MLP is per token and the
softmax rows of kept queries do not depend on other queries. Likewise the fused
row of ATPViT-EViT equals fusing the full-attention outputs with the normalised
weights of Eq. 5 when the projection is affine (no scale-norm or gate). (The
``evit`` method follows EViT and does not normalise its weights, so its fused
token differs by that factor.) What ATPViT changes is the cost: ``block_macs``
counts attention-value products and the projection on the kept rows only (the
paper's §3.1.1).

``--score magnitude`` scores the block's *input* tokens here (``topk`` scores the
tokens after attention), the only score whose value differs between the two.
"""

from __future__ import annotations

import torch

from ..scores import score_needs_full_attention
from . import register_method
from .base import AttentionView, BlockOps, LayerPlan, TokenState
from .functional import gather_head_rows, gather_tokens, prefix_and_patch_index, rank_patch_tokens, split_prefix
from .scored import ScoredTokenReduction


def scaled_logits(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    """``q kᵀ · scale``: (B, H, R, D), (B, H, N, D) → (B, H, R, N)."""
    return (q @ k.transpose(-2, -1)) * scale


def normalised_weights(weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``s_i / Σ_{j∈R} s_j`` over dim 1 (B, R): the normalised importance of Eq. 5."""
    return weights / weights.sum(dim=1, keepdim=True).clamp_min(eps)


def fuse_rows(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``Σ_i w_i x_i`` with normalised weights: (B, R, C), (B, R) → (B, 1, C), the fused input token of §3.2."""
    return normalised_weights(weights).unsqueeze(1) @ tokens


def fuse_attention_rows(probabilities: torch.Tensor, weights: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """ATPViT Eq. 5: ``Σ_i (s_i / Σ_j s_j) a_i`` over the removed rows.

    ``probabilities`` (B, H, R, N) softmax rows of the removed queries, ``weights``
    (B, R) their importance scores (the same weights for every head) → (B, H, 1, N).
    """
    return normalised_weights(weights, eps)[:, None, None, :] @ probabilities


class _AttentionPruning(ScoredTokenReduction):
    """Shared by both ATPViT variants: scoring from the block's own ``Q``, ``K`` (no size bias)."""

    tensorrt = "standard ONNX ops (TopK + GatherElements on the query rows, fused attention on the kept rows)"

    def _scores(self, block: BlockOps, x: torch.Tensor, q, k, v) -> torch.Tensor:
        return self.token_scores(x, AttentionView(q, k, v, block.scale, None))

    def _qk_rows(self, plan: LayerPlan) -> int:
        """Rows of ``QKᵀ`` computed in a pruning block."""
        raise NotImplementedError

    def block_macs(self, dim: int, mlp_hidden: int, plan: LayerPlan) -> int:
        """qkv on all ``N`` tokens; ``QKᵀ`` on the computed rows × N; ``A·V`` and the projection on the ``N'`` kept rows."""
        if plan.remove == 0:
            return super().block_macs(dim, mlp_hidden, plan)
        n, n_out = plan.tokens_in, plan.tokens_out
        qk_rows = n if score_needs_full_attention(self.score) else self._qk_rows(plan)
        qkv = 3 * n * dim * dim
        logits = qk_rows * n * dim
        attention_value = n_out * n * dim
        projection = n_out * dim * dim
        mlp = 2 * n_out * dim * mlp_hidden
        return qkv + logits + attention_value + projection + mlp


@register_method
class ATPViTTopK(_AttentionPruning):
    name = "atpvit-topk"
    paper = "Kusaki, Ishibashi & Meng (ATPViT), §3.1"
    summary = "prune inside attention: only the top query rows go through softmax·V, projection and MLP"

    def _qk_rows(self, plan: LayerPlan) -> int:
        return plan.tokens_out

    def block_forward(self, block: BlockOps, x: torch.Tensor, state: TokenState, plan: LayerPlan) -> torch.Tensor:
        if plan.remove == 0:
            return super().block_forward(block, x, state, plan)
        h = block.norm1(x)
        q, k, v = block.qkv(h)
        order = rank_patch_tokens(self._scores(block, x, q, k, v), plan.num_prefix)
        rows = prefix_and_patch_index(order[:, : plan.tokens_out - plan.num_prefix], plan.num_prefix)
        y = block.project(block.attend(gather_head_rows(q, rows), k, v), gather_tokens(h, rows))
        return block.mlp_residual(block.attn_residual(gather_tokens(x, rows), y))


@register_method
class ATPViTEViT(_AttentionPruning):
    name = "atpvit-evit"
    paper = "Kusaki, Ishibashi & Meng (ATPViT), §3.2 Eq. 5"
    summary = "ATPViT with the removed attention rows fused into one row weighted by importance"

    def _qk_rows(self, plan: LayerPlan) -> int:
        return plan.tokens_in  # the removed rows' softmax feeds the fused row

    def block_forward(self, block: BlockOps, x: torch.Tensor, state: TokenState, plan: LayerPlan) -> torch.Tensor:
        if plan.remove == 0:
            return super().block_forward(block, x, state, plan)
        num_prefix = plan.num_prefix
        keep_patch = plan.tokens_out - num_prefix - 1  # one row for the fused one
        h = block.norm1(x)
        q, k, v = block.qkv(h)
        scores = self._scores(block, x, q, k, v)
        order = rank_patch_tokens(scores, num_prefix)
        kept_rows = prefix_and_patch_index(order[:, :keep_patch], num_prefix)
        removed_patches = order[:, keep_patch:]
        removed_rows = removed_patches + num_prefix
        _, patch_scores = split_prefix(scores, num_prefix)
        weights = gather_tokens(patch_scores, removed_patches)  # (B, R)

        kept_out = block.attend(gather_head_rows(q, kept_rows), k, v)
        removed_probabilities = scaled_logits(gather_head_rows(q, removed_rows), k, block.scale).softmax(dim=-1)
        fused_out = fuse_attention_rows(removed_probabilities, weights) @ v  # (B, H, 1, D)
        heads_out = torch.cat([kept_out, fused_out], dim=2)

        h_rows = torch.cat([gather_tokens(h, kept_rows), fuse_rows(gather_tokens(h, removed_rows), weights)], dim=1)
        x_rows = torch.cat([gather_tokens(x, kept_rows), fuse_rows(gather_tokens(x, removed_rows), weights)], dim=1)
        y = block.project(heads_out, h_rows)
        return block.mlp_residual(block.attn_residual(x_rows, y))
