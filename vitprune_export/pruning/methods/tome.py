"""``tome``: Token Merging.

Bolya et al., *Token Merging: Your ViT but Faster*, ICLR 2023, §3: bipartite
soft matching on the keys (mean over heads) merges ``r`` pairs per block by a
size-weighted average, and proportional attention adds ``log s`` to attention
so a merged token counts as the tokens it stands for.

As the official ``tome/merge.py``: the A/B split alternates over all tokens with
the class token first in A; prefix tokens never merge and stay first; ``r`` is
capped at ``⌊(N − P)/2⌋`` (see :func:`.functional.bipartite_soft_matching`).

``--sort-unmerged`` (off by default, a departure from the official code) keeps
the unmerged tokens in position order also in models without prefix tokens, where
the official code keeps them in similarity order: there a near-tie between two
similarities, which ONNX Runtime and PyTorch may break differently, reorders the
tokens and every later merge (ViT-S/16 with global average pooling, random
weights, rate 0.06: up to 3 of 12 parity batches off by 0.18–0.24; sorted, all
≤ 1.0e-6; docs/methods/tome.md).
"""

from __future__ import annotations

from ...errors import VitPruneError
from . import register_method
from .base import Knob, TokenReduction
from .functional import merge_bipartite
from .fused import fused_step


class BipartiteMergeLimit:
    """Bipartite matching merges at most one token of each A/B pair: half the patch tokens per block (§3)."""

    def max_remove(self, tokens_in: int, num_prefix: int) -> int:
        return (tokens_in - num_prefix) // 2

    def cap_remove(self, tokens_in: int, num_prefix: int, remove: int) -> int:
        return min(remove, self.max_remove(tokens_in, num_prefix))


@register_method
class ToMe(BipartiteMergeLimit, TokenReduction):
    name = "tome"
    paper = "Bolya et al. ICLR'23, §3"
    summary = "bipartite soft matching on keys, size-weighted merge, proportional attention"
    knobs = (
        Knob(
            "sort_unmerged",
            False,
            "keep unmerged tokens in position order also without a class token (official: similarity order; "
            "stable under near-ties, see docs/methods/tome.md)",
        ),
    )
    tracks_size = True
    tensorrt = "standard ONNX ops (one-hot MatMul merge); --plugin-nodes: one VitPruneToMeMerge node per layer"

    def validate(self) -> None:
        self.sort_unmerged = bool(self.sort_unmerged)

    def check_plugins(self, num_prefix: int) -> None:
        if self.sort_unmerged and num_prefix == 0:
            raise VitPruneError(
                "--sort-unmerged has no plugin form (VitPruneToMeMerge keeps the official similarity order "
                "in models without a class token); export without --plugin-nodes"
            )

    def near_tie_hint(self, num_prefix: int) -> str:
        if num_prefix == 0 and not self.sort_unmerged:
            return (
                "Without a class token ToMe keeps unmerged tokens in similarity order (as the official code), "
                "where a near-tie can reorder them in ONNX Runtime; --sort-unmerged keeps them in position order. "
            )
        return ""

    def reduce(self, x, attention, size, plan):
        num_prefix = plan.num_prefix
        if size is None:
            size = x.new_ones(x.shape[:2])
        fused = fused_step("tome_merge")
        if fused is not None:  # one fused VitPruneToMeMerge node
            return fused(x, attention.mean_key, size, num_prefix, plan.remove)
        return merge_bipartite(x, attention.mean_key, size, num_prefix, plan.remove, self.sort_unmerged)
