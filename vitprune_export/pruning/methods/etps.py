"""``etps``: prune, then squeeze each removed token into its most similar kept token.

Wei et al., *Joint Token Pruning and Squeezing Towards More Aggressive
Compression of Vision Transformers* (TPS), CVPR 2023, §3.2–3.3. eTPS is TPS's
intra-block variant: like EViT it ranks tokens by the class token's attention
inside a block, then prunes and squeezes there, after attention (dTPS, the
inter-block variant, selects between blocks with a learned predictor). The
kept (reserved) tokens are chosen by score (CLS attention by default); every
removed token is assigned to the kept patch token with the highest cosine
similarity of token features (its host), and each host becomes the weighted
average of itself and its guests, with weights ``exp(similarity)`` (a host's own
similarity is 1). The squeeze is a one-hot matrix product: no scatter in the graph.
"""

from __future__ import annotations

import torch

from . import register_method
from .functional import (
    gather_tokens,
    one_hot,
    rank_patch_positions,
    row_max,
    row_norm,
    unit_rows,
    weighted_sum_into,
    with_prefix,
)
from .scored import ScoredTokenReduction


def squeeze_into_hosts(kept: torch.Tensor, removed: torch.Tensor, num_prefix: int = 0) -> torch.Tensor:
    """TPS squeeze: each removed token (B, R, C) joins its most similar kept patch token.

    ``kept`` (B, P + K, C) starts with ``P = num_prefix`` prefix tokens, which never host.
    A host ``k`` becomes ``(e·k + Σ_i w_i r_i) / (e + Σ_i w_i)``, ``w_i = exp(cos(r_i, k))``,
    written as ``k + Σ_i (w_i / (e + Σ w))(r_i − k)``: one small one-hot product
    ((P + K) × R) adds the guests, every other row is copied exactly, and the kept tokens
    are neither normalised nor rescaled (their norms divide the R × (P + K) similarity).
    """
    kept_norm = row_norm(kept).clamp_min(1e-6).transpose(-2, -1)  # (B, 1, P + K)
    similarity = ((unit_rows(removed) @ kept.transpose(-2, -1)) / kept_norm)[..., num_prefix:]  # (B, R, K) cosine
    best_similarity, host = row_max(similarity)
    host = host + num_prefix
    weight = best_similarity.exp()  # (B, R)
    assignment = one_hot(host, kept.shape[1], kept.dtype)  # (B, R, P + K)
    self_weight = torch.e  # exp(cos(x, x)) = e
    denominator = self_weight + (weight.unsqueeze(1) @ assignment).squeeze(1)  # (B, P + K)
    share = weight / gather_tokens(denominator, host)
    moved = (removed - gather_tokens(kept, host)) * share.unsqueeze(-1)
    return weighted_sum_into(kept, moved, assignment)


@register_method
class ETPS(ScoredTokenReduction):
    name = "etps"
    paper = "Wei et al. CVPR'23 (TPS), §3.2-3.3"
    summary = "prune by score, squeeze removed tokens into their most similar kept token"
    tensorrt = "standard ONNX ops"

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        keep_patch = plan.tokens_out - num_prefix
        order = rank_patch_positions(self.token_scores(x, attention), num_prefix)
        kept = gather_tokens(x, with_prefix(order[:, :keep_patch], num_prefix))
        removed = gather_tokens(x, order[:, keep_patch:])
        return squeeze_into_hosts(kept, removed, num_prefix), size
