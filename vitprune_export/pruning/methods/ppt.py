"""``ppt``: adaptive token pruning & pooling, chosen per layer and per image.

Wu, Zeng, Wang, Wang & Chen, *PPT: Token Pruning and Pooling for Efficient Vision
Transformers*, arXiv 2310.01812; as restated in the thesis seed, §3.3, Eq. 3.3::

    S_op = var(Score),   policy = token pruning  if S_op > τ
                                  token pooling  otherwise

``Score`` is the ATS significance score of the patch tokens (thesis Eq. 3.1:
CLS attention × ‖v‖, normalised to sum to 1). Pruning keeps the top-k tokens by
that score; pooling is ToMe's bipartite soft matching on the keys with a
size-weighted merge (thesis §3.2.2), and the sizes feed proportional attention
``softmax(QKᵀ/√d + log s)`` (thesis Eq. 3.2) in the next blocks.

Both branches remove the same number of tokens, so each image picks one with a
``torch.where`` on its own variance: both are computed, every shape is static,
and a batch may mix policies. ``τ = 7e-5`` is the threshold of the official PPT
evaluation command for DeiT-S (its README: ``--threshold 7e-5``; fine-tuning used
6e-5). The variance is the unbiased sample variance over the patch tokens
(``torch.var``'s default).

As the official ``ppt_deit.py``: an image pools when ``var < τ`` and prunes
otherwise (so ``var = τ`` prunes); the count is capped at half the patch tokens,
``⌊(N − P)/2⌋`` (officially ``r = min(r, (N − 1) // 2)``, one class token); pruning keeps the
prefix tokens first, then the kept patch tokens in descending score (the official
code sorts all tokens by score with the class token's set to 2, above any
normalised score); pooling is ToMe's step with the official split
(:func:`.functional.merge_bipartite`).

``--sort-pruned`` (off by default, a departure from the official code) puts the
pruned branch's tokens in position order instead of score order. The score
order is decided by floats: two kept scores can lie within a few ulp of each
other, and ONNX Runtime may then order them differently from PyTorch; that
matters only when the image pools in a later block, whose split goes by
position. Position order depends only on which tokens are kept.
"""

from __future__ import annotations

import torch

from ..scores import ats_score
from . import register_method
from .base import Knob, TokenReduction, check_positive
from .functional import gather_prefix_and_patches, merge_bipartite, sort_indices, split_prefix, top_patch_tokens
from .tome import BipartiteMergeLimit

DEFAULT_TAU = 7e-5


def patch_score_variance(scores: torch.Tensor, num_prefix: int) -> torch.Tensor:
    """Thesis Eq. 3.3 ``S_op = var(Score)``: variance of the patch tokens' scores, renormalised to sum to 1, (B,)."""
    _, patch_scores = split_prefix(scores, num_prefix)
    patch_scores = patch_scores / patch_scores.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return patch_scores.var(dim=-1)


def prune_branch(
    x: torch.Tensor,
    size: torch.Tensor,
    scores: torch.Tensor,
    num_prefix: int,
    keep_patch: int,
    sort_pruned: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token pruning (thesis §3.2.1): prefix tokens, then the ``keep_patch`` best patch tokens in descending
    score (the official order; in position order with ``sort_pruned``), with their sizes."""
    index = top_patch_tokens(scores, num_prefix, keep_patch)  # best first
    if sort_pruned:
        index = sort_indices(index)
    return gather_prefix_and_patches(x, index, num_prefix), gather_prefix_and_patches(size, index, num_prefix)


def pool_branch(
    x: torch.Tensor, size: torch.Tensor, keys: torch.Tensor, num_prefix: int, merges: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token pooling (thesis §3.2.2): ToMe's bipartite soft matching on the keys, ``merges`` size-weighted merges."""
    return merge_bipartite(x, keys, size, num_prefix, merges)


def choose_pruning(scores: torch.Tensor, num_prefix: int, tau: float) -> torch.Tensor:
    """Thesis Eq. 3.3: True where the image prunes, False where it pools; (B,) bool.

    The official code pools when ``var(Score) < τ`` and prunes otherwise, so a variance equal to τ prunes.
    """
    return patch_score_variance(scores, num_prefix) >= tau


@register_method
class PPT(BipartiteMergeLimit, TokenReduction):
    name = "ppt"
    paper = "Wu et al. arXiv 2310.01812; thesis §3.3 Eq. 3.3"
    summary = "per image: prune by ATS score if its variance ≥ τ, else pool (bipartite merge)"
    knobs = (
        Knob("tau", DEFAULT_TAU, "variance threshold τ of Eq. 3.3 (PPT: 7e-5 for DeiT-S)"),
        Knob(
            "sort_pruned",
            False,
            "keep pruned tokens in position order (official: score order; stable under near-ties, "
            "see docs/methods/ppt.md)",
        ),
    )
    tracks_size = True
    needs_class_token = True
    tensorrt = "standard ONNX ops (both branches + Where)"

    def validate(self) -> None:
        check_positive("tau", self.tau)
        self.sort_pruned = bool(self.sort_pruned)

    def near_tie_hint(self, num_prefix: int) -> str:
        if self.sort_pruned:
            return ""
        return (
            "PPT keeps pruned tokens in score order (as the official code); when an image pools after pruning, "
            "a near-tie of two scores can reorder its tokens in ONNX Runtime; --sort-pruned keeps them in "
            "position order. "
        )

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        if size is None:
            size = x.new_ones(x.shape[:2])
        scores = ats_score(x, attention)
        pruned, pruned_size = prune_branch(x, size, scores, num_prefix, plan.tokens_out - num_prefix, self.sort_pruned)
        pooled, pooled_size = pool_branch(x, size, attention.mean_key, num_prefix, plan.remove)
        prune = choose_pruning(scores, num_prefix, self.tau)
        tokens = torch.where(prune[:, None, None], pruned, pooled)
        return tokens, torch.where(prune[:, None], pruned_size, pooled_size)
