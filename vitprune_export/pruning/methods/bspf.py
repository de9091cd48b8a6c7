"""``bspf``: block-based symmetric pruning and fusion of attention entries (BSPF-ViT).

BSPF-ViT seed paper, §3.1–3.4 and Algorithm 1. Every token is kept; what is
pruned is half of the entries of the attention matrix:

1. §3.1–3.2, Eq. 1–2: ``A = softmax(QKᵀ/√d)`` is cut into blocks ``A_{m,n}`` of
   ``Ω × Ω`` entries (query chunk ``m`` × key chunk ``n``; ``Ω`` = ``--block-size``).
   ``N`` is padded with zero rows/columns up to a multiple of ``Ω``; padded
   entries never count.
2. Eq. 3: a 3×3 convolution with weights summing to 1, applied to each block with
   a zero border, gives the smoothed score ``S_{m,n}`` (uniform 1/9 by default;
   the paper learns it when fine-tuning; ``--smoothing none`` is its "one token"
   ablation, Table 6).
3. Eq. 4: the top ``--keep-ratio`` (0.5) of each block's entries by ``S`` are
   reserved (``A^r``), the rest pruned (``A^p``). Exactly ``⌈ρ·|block|⌉`` entries
   per block, ``|block|`` counting valid (unpadded) entries only.
4. Eq. 5: every query ``Q_i`` of chunk ``m`` finds its most cosine-similar other
   query ``Q_i^best`` of the same chunk (per head).
5. Eq. 7: ``S_H = 1 − Hamming(P_i, P_best)/|P_i|``, ``P`` the keep/prune string
   of the two rows in block ``(m, n)``.
6. Eq. 6/8 with Fig. 6: the pruned entries of row ``i`` flow into row
   ``i_b`` of the same block with rate ``α = ρ_i^b · S_H^i`` (``ρ`` clamped at 0),
   only where ``A^r(i_b, j)`` is reserved ("updated only if A^r(i, j) > 0").
   (Eq. 8 as printed adds ``A^p(i_b, j)``, the best row's own pruned entries; we
   follow the text and Fig. 6: "each query ... contributes its information to the
   matched query for all important keys".)
7. Each row of ``A^r`` is re-normalised to sum to 1. The paper says "normalised
   with a SoftMax"; a softmax over probabilities in which pruned entries are 0
   would give every pruned entry weight ``e⁰``, undoing the pruning, so we divide
   by the row sum instead. A row with nothing reserved (possible in principle)
   falls back to its dense softmax row.
8. §3.4: ``--shared-qk`` enforces ``W_k = W_q``: timm's fused ``qkv`` weight has
   separate Q and K slices, and we use the **K** slice for both (``Q := K``, after
   k-norm), so ``QKᵀ = KKᵀ`` is symmetric; the pruning mask is decided on the
   upper triangle of ``S`` and mirrored to the lower (Fig. 8). Pretrained weights
   were not trained this way: fine-tune before trusting accuracy.

The graph is dense and masked (no block-sparse kernel): it computes the full
``N × N`` attention and more, so it is slower than the baseline until a
block-sparse kernel exists, and ``vitprune flops`` reports the dense count, the
same as the unpruned model. No ``scatter`` (fusion is a one-hot matrix product),
no in-place writes, one ``TopK`` per block with ``K = ⌈ρΩ²⌉ ≤ 3840``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...errors import VitPruneError
from . import register_method
from .base import BlockOps, Knob, LayerPlan, TokenReduction, TokenState
from .functional import cosine_similarity_matrix, one_hot, row_max

#: TensorRT's TopK limit (K ≤ 3840)
MAX_TOPK = 3840
SMOOTHING_KERNELS = ("uniform", "none")


def smoothing_kernel(kind: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """3×3 weights ``w_{k,l}`` of Eq. 3, summing to 1: uniform 1/9, or a centred delta (no smoothing)."""
    if kind == "uniform":
        return torch.full((3, 3), 1.0 / 9.0, dtype=dtype)
    kernel = torch.zeros((3, 3), dtype=dtype)
    kernel[1, 1] = 1.0
    return kernel


def to_blocks(matrix: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, H, Np, Np) → (B, H, C, C, Ω, Ω), indexed ``[m, n, i, j]`` (query chunk, key chunk, row, column)."""
    batch, heads, size, _ = matrix.shape
    chunks = size // block_size
    blocks = matrix.reshape(batch, heads, chunks, block_size, chunks, block_size)
    return blocks.permute(0, 1, 2, 4, 3, 5)


def from_blocks(blocks: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_blocks`: (B, H, C, C, Ω, Ω) → (B, H, CΩ, CΩ)."""
    batch, heads, chunks, _, block_size, _ = blocks.shape
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(batch, heads, chunks * block_size, chunks * block_size)


def smooth_blocks(blocks: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``S(i, j) = Σ_{k,l∈{−1,0,1}} w_{k,l} A(i−k, j−l)`` on each block, zero-padded at its border."""
    shape = blocks.shape
    block_size = shape[-1]
    weight = kernel.flip(0, 1).to(blocks.dtype).reshape(1, 1, 3, 3)  # convolution, not correlation
    smoothed = F.conv2d(blocks.reshape(-1, 1, block_size, block_size), weight, padding=1)
    return smoothed.reshape(shape)


def block_validity(num_tokens: int, block_size: int, device=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks of real (unpadded) tokens: entries (C, C, Ω, Ω), query rows per chunk (C, Ω), keys per chunk (C,)."""
    chunks = math.ceil(num_tokens / block_size)
    positions = torch.arange(chunks * block_size, device=device).reshape(chunks, block_size)
    token_valid = positions < num_tokens  # (C, Ω)
    entries = token_valid[:, None, :, None] & token_valid[None, :, None, :]
    return entries, token_valid, token_valid.sum(dim=-1)


def keep_counts_per_block(num_tokens: int, block_size: int, keep_ratio: float) -> list[list[int]]:
    """``⌈ρ · valid entries⌉`` for every block (m, n): static integers."""
    chunks = math.ceil(num_tokens / block_size)
    valid = [min(block_size, num_tokens - chunk * block_size) for chunk in range(chunks)]
    return [[max(1, math.ceil(keep_ratio * rows * cols - 1e-9)) for cols in valid] for rows in valid]


def mirror_upper(blocks: torch.Tensor) -> torch.Tensor:
    """Fig. 8: take entry ``(r, c)`` of the full matrix from ``(min(r,c), max(r,c))`` (upper triangle mirrored)."""
    chunks, block_size = blocks.shape[2], blocks.shape[-1]
    position = torch.arange(chunks * block_size, device=blocks.device).reshape(chunks, block_size)
    upper = position[:, None, :, None] <= position[None, :, None, :]  # (C, C, Ω, Ω): row ≤ column
    return torch.where(upper, blocks, blocks.permute(0, 1, 3, 2, 5, 4))


def reserve_top_entries(scores: torch.Tensor, valid: torch.Tensor, keep: list[list[int]]) -> torch.Tensor:
    """Eq. 4: True for the top ``keep[m][n]`` valid entries of each block by ``scores`` (B, H, C, C, Ω, Ω)."""
    shape = scores.shape
    lowest = torch.finfo(scores.dtype).min
    masked = torch.where(valid, scores, torch.full_like(scores, lowest))
    flat = masked.reshape(*shape[:4], shape[-2] * shape[-1])
    most = max(max(row) for row in keep)
    ranked = flat.topk(most, dim=-1, sorted=True).values  # (B, H, C, C, most)
    kth = torch.tensor(keep, device=scores.device) - 1  # (C, C)
    threshold = (ranked * one_hot(kth, most, scores.dtype)).sum(dim=-1)  # the keep-th largest score
    return (masked >= threshold[..., None, None]) & valid


def best_matching_queries(q: torch.Tensor, query_valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5: each query's most cosine-similar *other* valid query of its chunk.

    ``q`` (B, H, C, Ω, D) → (index (B, H, C, Ω) within the chunk, ``ρ`` (B, H, C, Ω)).
    ``ρ`` is clamped at 0 and is 0 when the chunk holds no other valid query.
    """
    block_size = q.shape[-2]
    similarity = cosine_similarity_matrix(q, q)  # (B, H, C, Ω, Ω)
    not_self = ~torch.eye(block_size, dtype=torch.bool, device=q.device)
    candidate = not_self[None] & query_valid[:, None, :]  # (C, Ω, Ω): column must be a real, other query
    similarity = torch.where(candidate, similarity, torch.full_like(similarity, -2.0))
    best_value, best_index = row_max(similarity)
    rho = torch.where(best_value > -1.5, best_value.clamp_min(0.0), torch.zeros_like(best_value))
    return best_index, rho


def fuse_pruned_entries(
    reserved: torch.Tensor,
    pruned: torch.Tensor,
    keep: torch.Tensor,
    match: torch.Tensor,
    rho: torch.Tensor,
    keys_per_chunk: torch.Tensor,
) -> torch.Tensor:
    """Eq. 6–8: ``A^r(i_b, j) += ρ_i · S_H^i · A^p(i, j)`` where ``A^r(i_b, j)`` is reserved.

    ``reserved``, ``pruned``, ``keep`` (B, H, C, C, Ω, Ω); ``match`` (B, H, C, Ω) best
    query index; ``rho`` its cosine similarity; ``keys_per_chunk`` (C,) valid keys.
    ``S_H`` (Eq. 7) compares the keep strings of rows ``i`` and ``i_b`` in each block.
    """
    assignment = one_hot(match, keep.shape[-1], keep.dtype).unsqueeze(3)  # (B, H, C, 1, Ω, Ω): [i, i_b]
    best_rows = assignment @ keep  # row i ← keep string of row i_b
    hamming = (keep - best_rows).abs().sum(dim=-1) / keys_per_chunk.to(keep.dtype)[:, None]  # (B, H, C, C, Ω)
    rate = rho.unsqueeze(3) * (1.0 - hamming)  # α of Eq. 8
    flow = assignment.transpose(-2, -1) @ (rate.unsqueeze(-1) * pruned)  # rows i_b gather their matches
    return reserved + flow * keep


def bspf_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    scale: float,
    block_size: int,
    keep_ratio: float,
    kernel: torch.Tensor,
    symmetric: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 1 on every head: the pruned-and-fused attention (B, H, N, N), rows summing to 1, and its keep mask."""
    num_tokens = q.shape[-2]
    chunks = math.ceil(num_tokens / block_size)
    pad = chunks * block_size - num_tokens
    attention = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)  # Eq. 1
    blocks = to_blocks(F.pad(attention, (0, pad, 0, pad)), block_size)  # Eq. 2
    valid, query_valid, keys_per_chunk = block_validity(num_tokens, block_size, q.device)

    scores = smooth_blocks(blocks, kernel)  # Eq. 3
    if symmetric:
        scores = mirror_upper(scores)
    keep = reserve_top_entries(scores, valid, keep_counts_per_block(num_tokens, block_size, keep_ratio))  # Eq. 4
    keep = keep.to(attention.dtype)
    reserved, pruned = blocks * keep, blocks * (1.0 - keep)

    q_chunks = F.pad(q, (0, 0, 0, pad)).reshape(*q.shape[:2], chunks, block_size, q.shape[-1])
    match, rho = best_matching_queries(q_chunks, query_valid)  # Eq. 5
    fused = fuse_pruned_entries(reserved, pruned, keep, match, rho, keys_per_chunk)  # Eq. 6-8

    fused = from_blocks(fused)[..., :num_tokens, :num_tokens]
    row_sum = fused.sum(dim=-1, keepdim=True)
    normalised = torch.where(row_sum > 0, fused / row_sum.clamp_min(1e-30), attention)
    return normalised, from_blocks(keep)[..., :num_tokens, :num_tokens]


@register_method
class BSPF(TokenReduction):
    name = "bspf"
    paper = "BSPF-ViT seed, §3.1-3.4 Alg. 1 Eq. 3-8"
    summary = "prune half of each attention block (3×3-smoothed score), fuse pruned entries into the best-matching row"
    knobs = (
        Knob("block_size", 16, "attention block size Ω (entries per block: Ω×Ω)"),
        Knob("keep_ratio", 0.5, "share of each block's attention entries kept (paper: 0.5)"),
        Knob("smoothing", "uniform", "3×3 score smoothing of Eq. 3 (uniform 1/9, or none)", choices=SMOOTHING_KERNELS),
        Knob("shared_qk", False, "symmetric attention: use the K projection for Q too (W_q = W_k, §3.4)"),
    )
    changes_token_count = False
    tensorrt = "standard ONNX ops, dense masked attention (needs a block-sparse kernel to be faster)"

    def validate(self) -> None:
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or self.block_size < 2:
            raise VitPruneError(f"--block-size must be an integer ≥ 2, not {self.block_size!r}")
        if not (isinstance(self.keep_ratio, (int, float)) and 0.0 < self.keep_ratio <= 1.0):
            raise VitPruneError(f"--keep-ratio must be in (0, 1], not {self.keep_ratio!r}")
        if math.ceil(self.keep_ratio * self.block_size**2) > MAX_TOPK:
            raise VitPruneError(
                f"--block-size {self.block_size} with --keep-ratio {self.keep_ratio} needs TopK K = "
                f"{math.ceil(self.keep_ratio * self.block_size**2)} > {MAX_TOPK} (TensorRT's limit); use a smaller block size"
            )
        self.shared_qk = bool(self.shared_qk)
        self.smoothing_weights = smoothing_kernel(self.smoothing)

    def max_remove(self, tokens_in: int, num_prefix: int) -> int:
        return 0

    def cap_remove(self, tokens_in: int, num_prefix: int, remove: int) -> int:
        return 0

    def block_forward(self, block: BlockOps, x: torch.Tensor, state: TokenState, plan: LayerPlan) -> torch.Tensor:
        h = block.norm1(x)
        q, k, v = block.qkv(h)
        if self.shared_qk:
            q = k
        probabilities, _ = bspf_attention(
            q, k, block.scale, self.block_size, self.keep_ratio, self.smoothing_weights, symmetric=self.shared_qk
        )
        y = block.project(probabilities @ v, h)
        return block.mlp_residual(block.attn_residual(x, y))
