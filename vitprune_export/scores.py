"""Token significance scores for the Top-K family (``--score``).

Each score maps the tokens after attention ``x`` (B, N, C) and the block's
:class:`~vitprune_export.methods.base.AttentionView` to one number per token,
(B, N), higher = more important. Prefix tokens' scores are ignored by the
selection (they are always kept).

| name | what | source |
| --- | --- | --- |
| ``cls-attn`` | attention from the class token, mean over heads | VPA paper Eq. 3 |
| ``magnitude`` | L2 norm of the token | VPA paper §4.1.4 (Magnitude ablation) |
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import VitPruneError, did_you_mean

ScoreFunction = Callable[[torch.Tensor, "AttentionView"], torch.Tensor]  # noqa: F821

_SCORES: dict[str, tuple[ScoreFunction, bool, str]] = {}


def register_score(name: str, needs_class_token: bool, summary: str):
    """Decorator: register ``fn(x, attention) -> (B, N)`` as score ``name``."""

    def decorate(fn: ScoreFunction) -> ScoreFunction:
        _SCORES[name] = (fn, needs_class_token, summary)
        return fn

    return decorate


def list_scores() -> list[str]:
    return list(_SCORES)


def score_needs_class_token(name: str) -> bool:
    return _lookup(name)[1]


def score_summary(name: str) -> str:
    return _lookup(name)[2]


def _lookup(name: str):
    try:
        return _SCORES[name]
    except KeyError:
        raise VitPruneError(
            f"unknown score {name!r}{did_you_mean(name, _SCORES)}; choose one of {', '.join(_SCORES)}"
        ) from None


def token_scores(name: str, x: torch.Tensor, attention) -> torch.Tensor:
    """Score every token with the score ``name``: (B, N)."""
    return _lookup(name)[0](x, attention)


@register_score("cls-attn", needs_class_token=True, summary="attention from the class token, mean over heads")
def cls_attention_score(x: torch.Tensor, attention) -> torch.Tensor:
    """VPA paper Eq. 3: ``S_j = 1/H Σ_h A^h_{c,j}``."""
    return attention.cls_attention


@register_score("magnitude", needs_class_token=False, summary="L2 norm of each token")
def magnitude_score(x: torch.Tensor, attention) -> torch.Tensor:
    """L2 norm of each token (the Magnitude ablation, VPA paper §4.1.4)."""
    return x.norm(dim=-1)
