"""``none``: the unpruned baseline (every block keeps every token)."""

from __future__ import annotations

from . import register_method
from .base import TokenReduction


@register_method
class NoReduction(TokenReduction):
    name = "none"
    paper = "—"
    summary = "unpruned baseline"
    changes_token_count = False
    tensorrt = "standard ONNX ops"

    def max_remove(self, tokens_in: int, num_prefix: int) -> int:
        return 0

    def cap_remove(self, tokens_in: int, num_prefix: int, remove: int) -> int:
        return 0
