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
from .functional import cosine_similarity_matrix, gather_patches, one_hot, rank_patch_tokens, weighted_sum_into
from .scored import ScoredTokenReduction


def squeeze_into_hosts(kept: torch.Tensor, removed: torch.Tensor) -> torch.Tensor:
    """TPS squeeze: each removed token (B, R, C) joins its most similar kept token (B, K, C)."""
    similarity = cosine_similarity_matrix(removed, kept)  # (B, R, K)
    best_similarity, host = similarity.max(dim=-1)
    weight = best_similarity.exp()  # (B, R)
    assignment = one_hot(host, kept.shape[1], kept.dtype)  # (B, R, K)
    self_weight = torch.e  # exp(cos(x, x)) = e
    numerator = weighted_sum_into(kept * self_weight, removed * weight.unsqueeze(-1), assignment)
    denominator = self_weight + (assignment.transpose(-2, -1) @ weight.unsqueeze(-1))
    return numerator / denominator


@register_method
class ETPS(ScoredTokenReduction):
    name = "etps"
    paper = "Wei et al. CVPR'23 (TPS), §3.2-3.3"
    summary = "prune by score, squeeze removed tokens into their most similar kept token"
    tensorrt = "standard ONNX ops"

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        keep_patch = plan.tokens_out - num_prefix
        order = rank_patch_tokens(self.token_scores(x, attention), num_prefix)
        kept = gather_patches(x, order[:, :keep_patch], num_prefix)
        removed = gather_patches(x, order[:, keep_patch:], num_prefix)
        return torch.cat([x[:, :num_prefix], squeeze_into_hosts(kept, removed)], dim=1), size
