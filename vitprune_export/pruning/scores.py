"""Token significance scores for the Top-K family (``--score``).

Each score maps the tokens after attention ``x`` (B, N, C) and the block's
:class:`~vitprune_export.pruning.methods.base.AttentionView` to one number per token,
(B, N), higher = more important. Prefix tokens' scores are ignored by the
selection (they are always kept).

| name | what | source |
| --- | --- | --- |
| ``cls-attn`` | attention from the class token, mean over heads | VPA paper Eq. 3 |
| ``magnitude`` | L2 norm of the token | VPA paper §4.1.4 (Magnitude ablation) |
| ``ats`` | CLS attention × ‖v‖, normalised | PPT thesis Eq. 3.1 (ATS, Fayyaz et al. ECCV'22) |
| ``entropy`` | entropy of the token's attention row × ‖v‖, normalised | PPT thesis §5.4.2 |
| ``mean-attn`` | attention the token receives, mean over queries and heads | thesis §5.4.3 (there averaged over heads) |

``ats`` and ``entropy`` are normalised to sum to 1 over tokens ``1…N−1``: the
thesis sums over every token but the class token (index 0). ``entropy`` and
``mean-attn`` read the full N×N attention (``AttentionView.attention_probabilities``);
``cls-attn`` and ``ats`` only the class token's row.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import VitPruneError, did_you_mean

ScoreFunction = Callable[[torch.Tensor, "AttentionView"], torch.Tensor]  # noqa: F821

_SCORES: dict[str, tuple[ScoreFunction, bool, str]] = {}
_FULL_ATTENTION: set[str] = set()

#: ε inside ``log(p + ε)`` of the attention entropy (thesis §5.4.2) and in the normalisations
EPSILON = 1e-8


def register_score(name: str, needs_class_token: bool, summary: str, needs_full_attention: bool = False):
    """Decorator: register ``fn(x, attention) -> (B, N)`` as score ``name``.

    ``needs_full_attention``: the score reads the whole N×N attention matrix, so a
    method that otherwise computes only some rows of ``QKᵀ`` (ATPViT) pays for all of it.
    """

    def decorate(fn: ScoreFunction) -> ScoreFunction:
        _SCORES[name] = (fn, needs_class_token, summary)
        if needs_full_attention:
            _FULL_ATTENTION.add(name)
        return fn

    return decorate


def list_scores() -> list[str]:
    return list(_SCORES)


def score_needs_class_token(name: str) -> bool:
    return _lookup(name)[1]


def score_needs_full_attention(name: str) -> bool:
    """True when the score reads every row of the attention matrix (``entropy``, ``mean-attn``)."""
    _lookup(name)
    return name in _FULL_ATTENTION


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


def normalise_excluding_class_token(scores: torch.Tensor) -> torch.Tensor:
    """``S_i / Σ_{j≥1} S_j``: scores that sum to 1 over tokens 1…N−1 (thesis Eq. 3.1 and §5.4.2)."""
    return scores / scores[:, 1:].sum(dim=-1, keepdim=True).clamp_min(EPSILON)


@register_score("ats", needs_class_token=True, summary="CLS attention × value norm, normalised (ATS)")
def ats_score(x: torch.Tensor, attention) -> torch.Tensor:
    """PPT thesis Eq. 3.1 (ATS): ``Score_i = A_{1,i}·‖V_i‖ / Σ_j A_{1,j}·‖V_j‖``.

    ``A_1`` is the class token's softmax row, mean over heads (the ATS reference sums
    per-head products over heads, which the normalisation makes the same thing);
    ``‖V_i‖`` the norm of token ``i``'s value vector over all heads.
    """
    return normalise_excluding_class_token(attention.cls_attention * attention.value_norm)


def attention_entropy(probabilities: torch.Tensor, eps: float = EPSILON) -> torch.Tensor:
    """Entropy of every attention row, mean over heads: (B, H, N, N) → (B, N) (thesis §5.4.2).

    ``entropy(b, h, t₁) = −Σ_{t₂} p·log(p + ε)``, then ``1/H Σ_h``.
    """
    return -(probabilities * (probabilities + eps).log()).sum(dim=-1).mean(dim=1)


@register_score(
    "entropy", needs_class_token=False, summary="attention entropy × value norm, normalised", needs_full_attention=True
)
def entropy_score(x: torch.Tensor, attention) -> torch.Tensor:
    """PPT thesis §5.4.2: mean-over-heads entropy of token t's attention row × ‖v_t‖, normalised to sum to 1."""
    return normalise_excluding_class_token(attention_entropy(attention.attention_probabilities) * attention.value_norm)


@register_score(
    "mean-attn",
    needs_class_token=False,
    summary="attention received, mean over queries and heads",
    needs_full_attention=True,
)
def mean_attention_score(x: torch.Tensor, attention) -> torch.Tensor:
    """Average attention token ``t`` receives: ``1/(H·N) Σ_h Σ_i A^h_{i,t}``.

    The rows of ``A`` sum to 1, so these scores already sum to 1 over all tokens.
    """
    return attention.attention_probabilities.mean(dim=(1, 2))
