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
    if is_single_image(x):  # one Gather on the token axis, no batch offsets
        return x.index_select(1, index[0])
    if x.dim() == 2:
        return x.gather(1, index)
    batch, tokens, channels = x.shape
    offsets = torch.arange(batch, device=x.device).unsqueeze(1) * tokens
    rows = (index + offsets).reshape(-1)
    return x.reshape(batch * tokens, channels).index_select(0, rows).reshape(batch, index.shape[1], channels)


def is_single_image(x: torch.Tensor) -> bool:
    """True when the batch axis is a plain 1 (eager, or traced with a static batch of one).

    A symbolic batch (export with a dynamic batch axis) is never specialised here.
    """
    return type(x.shape[0]) is int and x.shape[0] == 1


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


def rank_patch_positions(scores: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Positions (counted from token 0) of the patch tokens, best score first: (B, N − P).

    :func:`rank_patch_tokens` plus ``P`` once, so the rows can be gathered directly.
    """
    return rank_patch_tokens(scores, num_prefix) + num_prefix


def with_prefix(positions: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """``0…P−1`` followed by ``positions`` (B, K) → (B, P + K)."""
    if num_prefix == 0:
        return positions
    prefix = torch.arange(num_prefix, device=positions.device).expand(positions.shape[0], num_prefix)
    return torch.cat([prefix, positions], dim=1)


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


def row_norm(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of each row of ``x`` over its last axis, keeping that axis: ``√(Σ x²)``.

    Written as Mul + ReduceSum + Sqrt rather than ``x.norm`` (ReduceL2): ONNX Runtime's
    ReduceL2 over the last axis is slow on wide rows (ViT-S/16 tokens, 186 × 384: 82 µs
    against 42 µs, 1 thread; narrow keys, 197 × 64: 17 against 13 µs), OpenVINO runs
    both alike (30 / 38 µs wide, 14 / 15 µs narrow; ``benchmarks/pruning_steps.py``).
    """
    return (x * x).sum(dim=-1, keepdim=True).sqrt()


def unit_rows(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm (norms below ``eps`` count as ``eps``)."""
    return x / row_norm(x).clamp_min(eps)


def row_max(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest value of each row of ``x`` (…, K) and its index, as ``x.max(dim=-1)``.

    One TopK with k = 1 instead of ReduceMax + ArgMax: OpenVINO runs ArgMax as a TopK of
    its own that takes 56 µs on ToMe's 98 × 98 similarity where TopK k = 1 gives both in
    14 µs (ONNX Runtime 13.5 / 12.4 µs). In ONNX both forms give ties to the lower index;
    PyTorch's ``topk`` does not promise which of two equal values it returns.
    """
    best = x.topk(1, dim=-1)
    return best.values.squeeze(-1), best.indices.squeeze(-1)


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Cosine similarity of every row of ``a`` (B, R, D) with every row of ``b`` (B, K, D) → (B, R, K)."""
    return unit_rows(a, eps) @ unit_rows(b, eps).transpose(-2, -1)


def weighted_sum_into(destination: torch.Tensor, sources: torch.Tensor, assignment: torch.Tensor) -> torch.Tensor:
    """``destination`` (B, K, C) plus the rows of ``sources`` (B, R, C) added into the
    rows that ``assignment`` (B, R, K, one-hot or soft) sends them to."""
    return destination + assignment.transpose(-2, -1) @ sources


def bipartite_split(num_prefix: int) -> tuple[int, int]:
    """How many prefix tokens fall in set A and in set B of ToMe's split: ``(⌈P/2⌉, ⌊P/2⌋)``.

    Tokens alternate into A (positions 0, 2, 4, …) and B (1, 3, 5, …) over *all*
    tokens, prefix tokens included, as in the official ``tome/merge.py``: the class
    token (position 0) is the first A token, a distillation token (position 1) the
    first B token, register tokens continue the alternation. The patch tokens of A
    therefore start at position ``2·⌈P/2⌉`` and those of B at ``2·⌊P/2⌋ + 1``.
    """
    return (num_prefix + 1) // 2, num_prefix // 2


def bipartite_soft_matching(
    metric: torch.Tensor, merges: int, num_prefix: int = 0, sort_unmerged: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ToMe's bipartite soft matching (Bolya et al., ICLR 2023, §3, "Bipartite Soft Matching").

    ``metric`` (B, T, D) over all T tokens, the ``P = num_prefix`` prefix tokens first.
    Tokens alternate into sets A and B over all tokens (:func:`bipartite_split`); each
    A token draws an edge to its most similar B token (cosine similarity) and the
    ``merges`` most similar edges merge.

    Prefix tokens never merge. The official code protects the class token, the first
    A token, by a row of ``−∞`` scores (it never merges away) and a distillation token,
    the first B token, by a column of ``−∞`` (nothing merges into it); here every
    prefix token in A has its row protected and every one in B its column, by leaving
    them out of the similarity — the same edges, without writing ``−∞`` into the
    graph. ``merges`` may be at most ``⌊(T − P)/2⌋``, the official cap
    ``r = min(r, (t − protected) // 2)``, which leaves every protected A row unmerged.

    Returns indices counted from the first patch token of A or of B (patch A token
    ``a`` is at position ``2·(⌈P/2⌉ + a)``, patch B token ``b`` at ``2·(⌊P/2⌋ + b) + 1``):

    - ``unmerged`` (B, |A| − ⌈P/2⌉ − r): the patch tokens of A that stay. With prefix
      tokens they are in ascending order, as the official code sorts them (so that the
      class token stays first); then the order is fixed by which tokens merge, never by
      near-ties of the similarities. Without prefix tokens the official code leaves them
      in edge order (most similar first), and so does this function unless
      ``sort_unmerged`` (a departure, off by default: with edge order a near-tie between
      two unmerged edges, which two runtimes may break differently, reorders the tokens
      and so the next block's split; sorted, the order depends only on which tokens merge).
    - ``merged`` (B, r): the patch A tokens that merge, most similar edge first.
    - ``destination`` (B, r): the patch B token each of them merges into.
    """
    protected_a, protected_b = bipartite_split(num_prefix)
    if merges > (metric.shape[1] - num_prefix) // 2:
        raise ValueError(f"{merges} merges exceed half of the {metric.shape[1] - num_prefix} patch tokens")
    metric = unit_rows(metric)
    patch_a, patch_b = metric[:, 2 * protected_a :: 2], metric[:, 2 * protected_b + 1 :: 2]
    similarity = patch_a @ patch_b.transpose(-2, -1)
    best_value, best_b = row_max(similarity)
    order = best_value.argsort(dim=-1, descending=True)
    merged, unmerged = order[:, :merges], order[:, merges:]
    if num_prefix > 0 or sort_unmerged:
        unmerged = sort_indices(unmerged)
    return unmerged, merged, best_b.gather(1, merged)


def merge_weighted_average(
    x: torch.Tensor,
    size: torch.Tensor,
    num_prefix: int,
    unmerged: torch.Tensor,
    merged: torch.Tensor,
    destination: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted average merge of A tokens into B tokens (ToMe's ``merge_wavg``).

    ``x`` (B, T, C) and ``size`` (B, T) over all tokens, indices from
    :func:`bipartite_soft_matching`. Returns the tokens and their sizes (sizes add up)
    in the order ``[prefix tokens, unmerged A patch tokens, B patch tokens]``: the
    official order ``[unmerged A, B]`` with the prefix tokens of B moved to the front
    (the official code does the same for a distillation token), so that every prefix
    token keeps its position and the next block splits them the same way.

    The output rows are taken with one gather; a B token ``b`` that receives A tokens
    ``a`` then becomes ``b + Σ_a (s_a / s'_b)(a − b)`` with ``s'_b = s_b + Σ_a s_a`` —
    the same average as ``(s_b·b + Σ_a s_a·a) / s'_b`` — through one small one-hot
    product ((T − r) × r), so no token is multiplied and divided by its size and
    tokens that receive nothing are copied exactly.
    """
    protected_a, protected_b = bipartite_split(num_prefix)
    batch, tokens = x.shape[:2]
    patch_a_start, patch_b_start = 2 * protected_a, 2 * protected_b + 1
    out_tokens = tokens - merged.shape[1]
    prefix = torch.arange(num_prefix, device=x.device).expand(batch, num_prefix)
    patch_b = torch.arange(patch_b_start, tokens, 2, device=x.device)
    index = torch.cat([prefix, 2 * unmerged + patch_a_start, patch_b.expand(batch, patch_b.shape[0])], dim=1)
    rows, row_size = gather_tokens(x, index), gather_tokens(size, index)
    merged_position = 2 * merged + patch_a_start
    destination_row = destination + (num_prefix + unmerged.shape[1])  # where each receiving B token sits in ``rows``
    assignment = one_hot(destination_row, out_tokens, x.dtype)  # (B, r, T − r)
    moved_size = gather_tokens(size, merged_position)  # (B, r)
    new_size = row_size + (moved_size.unsqueeze(1) @ assignment).squeeze(1)
    share = moved_size / gather_tokens(new_size, destination_row)  # s_a / s'_b
    moved = (gather_tokens(x, merged_position) - gather_tokens(rows, destination_row)) * share.unsqueeze(-1)
    return weighted_sum_into(rows, moved, assignment), new_size


def merge_bipartite(
    x: torch.Tensor, keys: torch.Tensor, size: torch.Tensor, num_prefix: int, merges: int, sort_unmerged: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ToMe step (§3): bipartite soft matching on ``keys`` (B, T, D), then the
    size-weighted merge of ``x`` (B, T, C) and ``size`` (B, T). Shared by ``tome``,
    PPT's pooling branch and the ``VitPruneToMeMerge`` reference."""
    unmerged, merged, destination = bipartite_soft_matching(keys, merges, num_prefix, sort_unmerged)
    return merge_weighted_average(x, size, num_prefix, unmerged, merged, destination)


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
