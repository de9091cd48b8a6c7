"""PyTorch references of the fused ops: the truth the ONNX Runtime execution, the
standard-op decomposition and the CUDA kernels are tested against.

Each function is the method's own maths (``methods/functional.py``) with the
scores and keys passed in, so a plugin node computes exactly what the unfused
method computes (``tests/export/test_ops.py`` checks ≤ 1e-6).

Ranking is on a total order, the same in every form of an op (this reference,
its ONNX Runtime kernel, the standard-op decomposition, the CUDA kernel): NaN
counts as +inf and equal scores keep their index order, as a stable descending
sort gives (:func:`rank_for_plugins`). Without NaN or ties that is the method's own
order; with them, every form still keeps the same tokens.
"""

from __future__ import annotations

import torch

from ...pruning.methods.functional import (
    cosine_similarity_matrix,
    gather_prefix_and_patches,
    gather_tokens,
    merge_bipartite,
    split_prefix,
    vpa_spread_sizes,
)
from .spec import OPS


def rank_for_plugins(scores: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Patch token indices (relative to the first patch token), best first, on the plugins' total order:
    NaN as +inf, ties to the lower index (a stable descending sort)."""
    patch_scores = scores[:, num_prefix:].float()
    patch_scores = torch.where(torch.isnan(patch_scores), torch.full_like(patch_scores, float("inf")), patch_scores)
    return patch_scores.argsort(dim=-1, descending=True, stable=True)


def topk_select(tokens: torch.Tensor, scores: torch.Tensor, num_prefix: int, keep: int) -> torch.Tensor:
    """``VitPruneTopKSelect`` (VPA paper §3.1, Alg. 1 lines 9–12).

    ``tokens`` (B, N, C), ``scores`` (B, N) → (B, P + keep, C): the ``P = num_prefix``
    prefix tokens, then the ``keep`` best-scoring patch tokens, best first.
    """
    return gather_prefix_and_patches(tokens, rank_for_plugins(scores, num_prefix)[:, :keep], num_prefix)


def vpa(
    tokens: torch.Tensor,
    scores: torch.Tensor,
    keys: torch.Tensor,
    sizes: torch.Tensor,
    num_prefix: int,
    keep: int,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``VitPruneVPA`` (VPA paper §3.2, Eq. 4–5).

    ``tokens`` (B, N, C), ``scores`` (B, N), ``keys`` (B, N, D) (mean over heads),
    ``sizes`` (B, N) → kept tokens (B, P + keep, C) in score order and their sizes
    (B, P + keep): ``s = s_keep + s_rm · softmax(M / (Σ_j M_ij · τ))``, ``M`` the cosine
    similarity of removed × kept patch keys. Prefix sizes pass through.
    """
    order = rank_for_plugins(scores, num_prefix)
    kept, removed = order[:, :keep], order[:, keep:]
    prefix, patches = split_prefix(tokens, num_prefix)
    prefix_size, patch_size = split_prefix(sizes, num_prefix)
    _, patch_keys = split_prefix(keys, num_prefix)
    similarity = cosine_similarity_matrix(gather_tokens(patch_keys, removed), gather_tokens(patch_keys, kept))
    new_patch_size = vpa_spread_sizes(
        gather_tokens(patch_size, kept), gather_tokens(patch_size, removed), similarity, tau
    )
    return torch.cat([prefix, gather_tokens(patches, kept)], dim=1), torch.cat([prefix_size, new_patch_size], dim=1)


def tome_merge(
    tokens: torch.Tensor, keys: torch.Tensor, sizes: torch.Tensor, num_prefix: int, merges: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``VitPruneToMeMerge`` (ToMe, Bolya et al. ICLR'23, §3; the official ``tome/merge.py``).

    ``tokens`` (B, N, C), ``keys`` (B, N, D), ``sizes`` (B, N) → (B, N − r, C) and
    (B, N − r), ``r = merges``. Sets A and B alternate over all N tokens (class token
    first in A); prefix tokens never merge. Output: the ``P`` prefix tokens, then the
    unmerged A patch tokens (ascending position; most similar edge first when
    ``P = 0``), then every B patch token (original order) holding the size-weighted
    average of itself and the A tokens merged into it; sizes add up.
    """
    return merge_bipartite(tokens, keys, sizes, num_prefix, merges)


#: op name → reference, one per :data:`.spec.OPS` entry (named after its ``step``)
REFERENCES = {spec.name: globals()[spec.step] for spec in OPS.values()}
