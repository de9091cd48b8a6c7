"""Pure tensor maths shared by the methods: selection, gathering, matching, merging.

No timm here, and nothing that exports badly: no ``scatter_reduce`` (the dynamo
exporter silently drops its ``mean`` reduction, and TensorRT < 10.9 rejects
ScatterND with a reduction), no in-place writes of ``-inf``. Merges are written
as one-hot matrix products, which are plain MatMuls in ONNX and TensorRT.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, K) of ``x`` (B, N, C) → (B, K, C); works for (B, N) too.

    Whole rows are taken from a (B·N, C) view: one ``Gather`` (axis 0) of K·B rows in
    ONNX, not ``GatherElements`` on an index expanded to (B, K, C) — callgrind, ONNX
    Runtime, ViT-S/16 Top-K r = 0.06: 859 M → 843 M instructions per image
    (unpruned 1192 M; docs/profiling.md).
    """
    if x.dim() == 2:
        return x.gather(1, index)
    batch, tokens, channels = x.shape
    offsets = torch.arange(batch, device=x.device).unsqueeze(1) * tokens
    rows = (index + offsets).reshape(-1)
    return x.reshape(batch * tokens, channels).index_select(0, rows).reshape(batch, index.shape[1], channels)


def gather_patches(x: torch.Tensor, patch_index: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Patch tokens ``patch_index`` (B, K), counted from the first patch token, of ``x`` (B, N, …) without slicing it."""
    return gather_tokens(x, patch_index + num_prefix)


def gather_prefix_and_patches(x: torch.Tensor, patch_index: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """The prefix tokens followed by patch tokens ``patch_index`` (B, K): one gather, no Slice + Concat of ``x``."""
    return gather_tokens(x, prefix_and_patch_index(patch_index, num_prefix))


def split_prefix(x: torch.Tensor, num_prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(prefix tokens, patch tokens) along dim 1; prefix = CLS, distillation, registers."""
    return x[:, :num_prefix], x[:, num_prefix:]


def rank_patch_tokens(scores: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Indices of the patch tokens (relative to the first patch token), best score first.

    ``scores`` is (B, N) over all tokens; prefix tokens are never candidates, which is
    what Alg. 1 line 10 of the VPA paper achieves by setting the CLS score to ∞.
    """
    return scores[:, num_prefix:].argsort(dim=-1, descending=True)


def top_patch_tokens(scores: torch.Tensor, num_prefix: int, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` best patch tokens (relative to the first patch token)."""
    return scores[:, num_prefix:].topk(keep, dim=-1, sorted=True).indices


def keep_top_tokens(
    x: torch.Tensor, scores: torch.Tensor, num_prefix: int, keep_patch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefix tokens followed by the ``keep_patch`` best-scoring patch tokens; also their indices."""
    index = top_patch_tokens(scores, num_prefix, keep_patch)
    return gather_prefix_and_patches(x, index, num_prefix), index


def sort_indices(index: torch.Tensor) -> torch.Tensor:
    """Token indices (B, K) in ascending order. Sorted as float32 (exact below 2^24) so
    the graph's TopK runs on floats, the type every TensorRT version's TopK takes."""
    if index.shape[-1] <= 1:
        return index
    return index.to(torch.float32).sort(dim=-1).values.to(index.dtype)


def one_hot(index: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot (…, K) → (…, K, num_classes) written as a comparison (Equal + Cast in ONNX)."""
    classes = torch.arange(num_classes, device=index.device)
    return (index.unsqueeze(-1) == classes).to(dtype)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` (B, R, D) with every row of ``b`` (B, K, D) → (B, R, K)."""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(eps)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(eps)
    return a @ b.transpose(-2, -1)


def weighted_sum_into(
    destination: torch.Tensor, sources: torch.Tensor, assignment: torch.Tensor
) -> torch.Tensor:
    """``destination`` (B, K, C) plus the rows of ``sources`` (B, R, C) added into the
    rows that ``assignment`` (B, R, K, one-hot or soft) sends them to."""
    return destination + assignment.transpose(-2, -1) @ sources


def bipartite_soft_matching(metric: torch.Tensor, merges: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ToMe's bipartite soft matching (Bolya et al., ICLR 2023, §3, "Bipartite Soft Matching").

    ``metric`` (B, T, D) over the tokens that may merge. Tokens alternate into sets
    A (even positions) and B (odd); each A token draws an edge to its most similar B
    token (cosine similarity); the ``merges`` most similar edges are merged.

    Returns (unmerged A indices (B, |A|−r), merged A indices (B, r),
    their B destinations (B, r)), all relative to the A or B set.

    The unmerged A tokens keep their positional order (ToMe keeps them in
    similarity order). The next block splits tokens into A and B by position, so a
    near-tie in the similarity sort (1e-8 apart, which ONNX Runtime and PyTorch
    may break differently) would otherwise reshuffle every later merge.
    """
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    set_a, set_b = metric[:, ::2], metric[:, 1::2]
    similarity = set_a @ set_b.transpose(-2, -1)
    best_value, best_b = similarity.max(dim=-1)
    order = best_value.argsort(dim=-1, descending=True)
    merged_a = order[:, :merges]
    unmerged_a = sort_indices(order[:, merges:])
    destination_b = best_b.gather(1, merged_a)
    return unmerged_a, merged_a, destination_b


def merge_weighted_average(
    x: torch.Tensor, size: torch.Tensor, unmerged_a: torch.Tensor, merged_a: torch.Tensor, destination_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge of A tokens into B tokens (ToMe's ``merge_wavg``).

    ``x`` (B, T, C) and ``size`` (B, T) over the same tokens as the matching.
    Returns ``[unmerged A, B]`` tokens and their sizes (sizes add up).
    """
    weighted = x * size.unsqueeze(-1)
    a_tokens, b_tokens = weighted[:, ::2], weighted[:, 1::2]
    a_size, b_size = size[:, ::2], size[:, 1::2]
    assignment = one_hot(destination_b, b_tokens.shape[1], x.dtype)  # (B, r, |B|)
    b_tokens = weighted_sum_into(b_tokens, gather_tokens(a_tokens, merged_a), assignment)
    b_size = b_size + (assignment.transpose(-2, -1) @ gather_tokens(a_size, merged_a).unsqueeze(-1)).squeeze(-1)
    tokens = torch.cat([gather_tokens(a_tokens, unmerged_a), b_tokens], dim=1)
    sizes = torch.cat([gather_tokens(a_size, unmerged_a), b_size], dim=1)
    return tokens / sizes.unsqueeze(-1), sizes


def vpa_spread_sizes(
    kept_size: torch.Tensor, removed_size: torch.Tensor, similarity: torch.Tensor, tau: float
) -> torch.Tensor:
    """Variable proportional attention size update (VPA paper §3.2, Eq. 4–5).

    ``s = s_keep + s_rm ψ(M')`` with ``M' = M / ((Σ_j M_ij) · τ)``, ψ = softmax over the
    kept tokens. ``similarity`` M is (B, R, K), removed × kept; ``kept_size`` (B, K),
    ``removed_size`` (B, R). Sizes are conserved: every removed size is spread in full.
    A row sum of exactly zero is nudged to ±1e-6 keeping its sign (the paper leaves it undefined).
    """
    row_sum = similarity.sum(dim=-1, keepdim=True)
    row_sum = torch.where(row_sum >= 0, row_sum.clamp_min(1e-6), row_sum.clamp_max(-1e-6))
    spread = F.softmax(similarity / (row_sum * tau), dim=-1)
    return kept_size + (removed_size.unsqueeze(1) @ spread).squeeze(1)


def gather_head_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B, K) of a per-head tensor ``t`` (B, H, N, D) → (B, H, K, D): the same rows in every head."""
    batch, heads, _, depth = t.shape
    return t.gather(2, index[:, None, :, None].expand(batch, heads, index.shape[1], depth))


def prefix_and_patch_index(patch_index: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Absolute token indices: ``0…P−1`` followed by ``patch_index + P`` (B, K) → (B, P + K)."""
    prefix = torch.arange(num_prefix, device=patch_index.device).unsqueeze(0).expand(patch_index.shape[0], num_prefix)
    return torch.cat([prefix, patch_index + num_prefix], dim=1)
