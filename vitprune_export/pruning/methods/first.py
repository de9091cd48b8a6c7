"""``first``: keep the first tokens — a pruning step that costs nothing (a diagnostic).

Not a method from a paper. Each block keeps its prefix tokens and the first patch
tokens in position order — a static slice: no score, no ranking, no gather — with
the keep counts any other method gets from the same rate or schedule, so its FLOPs
are theirs. What it measures is latency: on a given backend, batch and thread
count, ``first`` is the bound a selecting or merging method with those keep counts
can reach. The gap between a method and ``first`` is the method's own step (scoring,
top-k, gathers, matching, merging); the gap between ``first`` and the FLOPs
reduction belongs to the runtime (matrix products on fewer rows, fixed per-op
costs; docs/results.md). It drops the lower part of the image: never deploy it.
"""

from __future__ import annotations

from . import register_method
from .base import TokenReduction


@register_method
class FirstTokens(TokenReduction):
    name = "first"
    paper = "diagnostic (no paper)"
    summary = "diagnostic: keep the first tokens, no selection cost"
    tensorrt = "standard ONNX ops (one Slice)"

    def reduce(self, x, attention, size, plan):
        return x[:, : plan.tokens_out], size
