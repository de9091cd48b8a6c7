"""Shared base of the methods that rank tokens by a significance score (the Top-K family)."""

from __future__ import annotations

import torch

from ..scores import list_scores, score_needs_class_token, token_scores
from .base import AttentionView, Knob, TokenReduction

SCORE_KNOB = Knob(
    "score", "cls-attn", "token significance score (see docs/methods/scores.md)", choices=tuple(list_scores())
)


class ScoredTokenReduction(TokenReduction):
    """A method whose selection ranks tokens by ``--score`` (default: CLS attention)."""

    knobs = (SCORE_KNOB,)

    def requires_class_token(self) -> bool:
        return score_needs_class_token(self.score)

    def token_scores(self, x: torch.Tensor, attention: AttentionView) -> torch.Tensor:
        return token_scores(self.score, x, attention)
