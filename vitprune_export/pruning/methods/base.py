"""The interface every token-reduction method implements.

A method sees one transformer block at a time through a small adapter
(:class:`BlockOps`, implemented for timm in :mod:`vitprune_export.pruning.patch`), so the
maths here never imports timm. The default block is Algorithm 1 of the VPA paper
(Ishibashi & Meng 2025, §3.1): attention (with ``+ log s`` when the method
carries token sizes, Eq. 2), residual, then :meth:`TokenReduction.reduce` removes
``remove`` tokens, then the MLP runs on the tokens that are left.

Methods that work *inside* attention (ATPViT, BSPF) override
:meth:`TokenReduction.block_forward` and use the same adapter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol

import torch

from ...errors import VitPruneError, did_you_mean


@dataclass(frozen=True)
class Knob:
    """One tunable parameter of a method; becomes ``--name-with-dashes`` on the CLI."""

    name: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def kind(self) -> type:
        return type(self.default)


class AttentionView:
    """What one block's attention computed, read lazily by the method.

    ``q``, ``k``, ``v`` have shape (B, H, N, D) after q/k-norm; ``bias`` is the
    additive ``log s`` term of proportional attention, shape (B, 1, 1, N), or None.
    Nothing here materialises the N×N attention matrix: the CLS row is computed
    on its own (1×N per head), the main attention stays fused.
    """

    def __init__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, bias: torch.Tensor | None):
        self.q, self.k, self.v, self.scale, self.bias = q, k, v, scale, bias

    @cached_property
    def cls_attention_per_head(self) -> torch.Tensor:
        """Softmax row of query 0 (the class token), shape (B, H, N): VPA paper Alg. 1, line 9."""
        return self._cls_softmax.squeeze(2)

    @cached_property
    def _cls_softmax(self) -> torch.Tensor:
        """(B, H, 1, N). The query is scaled before the product, as timm's attention does
        (OpenVINO: 20 µs for the whole score against 30 µs scaling the 1 × N logits)."""
        logits = (self.q[:, :, :1] * self.scale) @ self.k.transpose(-2, -1)
        if self.bias is not None:
            logits = logits + self.bias
        return logits.softmax(dim=-1)

    @cached_property
    def cls_attention(self) -> torch.Tensor:
        """CLS attention averaged over heads, shape (B, N): VPA paper Eq. 3."""
        return self._cls_softmax.mean(dim=1).squeeze(1)

    @cached_property
    def attention_probabilities(self) -> torch.Tensor:
        """The full softmax attention (B, H, N, N), with the size bias when there is one.

        Only for scores that truly read every row (attention entropy, mean received
        attention; PPT thesis §5.4): it materialises the N×N matrix, which the CLS-row
        scores above never do.
        """
        logits = (self.q @ self.k.transpose(-2, -1)) * self.scale
        if self.bias is not None:
            logits = logits + self.bias
        return logits.softmax(dim=-1)

    @cached_property
    def value_norm(self) -> torch.Tensor:
        """L2 norm of each token's value vector over all heads, ‖V_j‖, shape (B, N): the ATS factor (PPT thesis Eq. 3.1)."""
        return self.v.pow(2).sum(dim=(1, 3)).sqrt()

    @cached_property
    def mean_key(self) -> torch.Tensor:
        """Keys averaged over heads, shape (B, N, D): the similarity metric of ToMe §3 and VPA §3.2.

        Written as one product with a (1, H) row of ``1/H`` over the (B, H, N·D) keys: a
        MatMul that reads the H head planes once, where ONNX Runtime's ReduceMean over the
        head axis strides through them (ViT-S/16, N = 186: 36 µs → 7 µs per block, 1 thread).
        """
        batch, heads, tokens, depth = self.k.shape
        average = self.k.new_full((1, heads), 1.0 / heads)
        return (average @ self.k.reshape(batch, heads, tokens * depth)).view(batch, tokens, depth)


class BlockOps(Protocol):
    """The pieces of one transformer block a method may call (see patch.TimmBlockOps)."""

    num_heads: int
    scale: float

    def norm1(self, x: torch.Tensor) -> torch.Tensor: ...
    def qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None
    ) -> torch.Tensor: ...
    def project(self, heads_out: torch.Tensor, h: torch.Tensor) -> torch.Tensor: ...
    def attn_residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass
class TokenState:
    """Carried from block to block within one forward pass.

    ``size`` (B, N) counts how many original tokens each token stands for
    (proportional attention, ToMe §3 / VPA Eq. 4); None means all ones.
    """

    size: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LayerPlan:
    """Static facts about one block of a pruned model."""

    layer: int
    tokens_in: int
    remove: int
    num_prefix: int

    @property
    def tokens_out(self) -> int:
        return self.tokens_in - self.remove


def size_bias(size: torch.Tensor | None) -> torch.Tensor | None:
    """``log s`` as an additive attention bias of shape (B, 1, 1, N) (VPA paper Eq. 2)."""
    if size is None:
        return None
    return size.log()[:, None, None, :]


class TokenReduction:
    """Base class of a token-reduction method. Subclasses set the class attributes
    and implement :meth:`reduce` (or :meth:`block_forward`)."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: carries token sizes across blocks and adds ``log s`` to attention
    tracks_size: ClassVar[bool] = False
    #: scores tokens by their attention from the class token
    needs_class_token: ClassVar[bool] = False
    #: False for methods that keep every token (baseline, BSPF)
    changes_token_count: ClassVar[bool] = True
    #: how it runs on TensorRT (shown by `vitprune methods`)
    tensorrt: ClassVar[str] = "standard ONNX ops"

    def __init__(self, **knobs: Any) -> None:
        known = {knob.name: knob for knob in self.knobs}
        for key in knobs:
            if key not in known:
                raise VitPruneError(
                    f"method {self.name!r} has no option {key!r}{did_you_mean(key, known)}; "
                    f"its options: {', '.join(known) or 'none'}"
                )
        for knob in self.knobs:
            value = knobs.get(knob.name, knob.default)
            if knob.choices is not None and value not in knob.choices:
                raise VitPruneError(
                    f"{knob.flag} must be one of {', '.join(knob.choices)}, not {value!r}{did_you_mean(str(value), knob.choices)}"
                )
            setattr(self, knob.name, value)
        self.validate()

    # -- configuration -----------------------------------------------------------------
    def validate(self) -> None:
        """Check knob values; raise VitPruneError with a clear message."""

    def knob_values(self) -> dict[str, Any]:
        return {knob.name: getattr(self, knob.name) for knob in self.knobs}

    def requires_class_token(self) -> bool:
        """True when the model must have a class token (CLS-attention scores)."""
        return self.needs_class_token

    def max_remove(self, tokens_in: int, num_prefix: int) -> int:
        """The most tokens one block may remove: always leave one patch token."""
        return max(tokens_in - num_prefix - 1, 0)

    def cap_remove(self, tokens_in: int, num_prefix: int, remove: int) -> int:
        """Rate-derived counts pass through here (ToMe caps them at half the patch tokens)."""
        return remove

    def setup(self, plan: LayerPlan) -> None:
        """Called once per block when the model is patched (precompute constants)."""

    def check_plugins(self, num_prefix: int) -> None:
        """Raise VitPruneError when these options have no plugin form (``export --plugin-nodes``)."""

    def near_tie_hint(self, num_prefix: int) -> str:
        """A sentence for a failed ONNX Runtime parity check when this configuration is known to
        depend on float near-ties (empty when it is not)."""
        return ""

    # -- forward -----------------------------------------------------------------------
    def block_forward(self, block: BlockOps, x: torch.Tensor, state: TokenState, plan: LayerPlan) -> torch.Tensor:
        """One transformer block with token reduction after attention (VPA paper Alg. 1)."""
        h = block.norm1(x)
        q, k, v = block.qkv(h)
        bias = size_bias(state.size) if self.tracks_size else None
        y = block.project(block.attend(q, k, v, bias), h)
        x = block.attn_residual(x, y)
        if plan.remove > 0:
            view = AttentionView(q, k, v, block.scale, bias)
            x, state.size = self.reduce(x, view, state.size, plan)
        return block.mlp_residual(x)

    def reduce(
        self, x: torch.Tensor, attention: AttentionView, size: torch.Tensor | None, plan: LayerPlan
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Remove ``plan.remove`` tokens from ``x`` (B, N, C); return the new tokens and sizes."""
        raise NotImplementedError

    # -- analytic cost -----------------------------------------------------------------
    def block_macs(self, dim: int, mlp_hidden: int, plan: LayerPlan) -> int:
        """Multiply-accumulates of one block: attention on all tokens, MLP on the kept ones."""
        n, n_out = plan.tokens_in, plan.tokens_out
        attention = 4 * n * dim * dim + 2 * n * n * dim  # qkv + proj, QKᵀ + AV
        mlp = 2 * n_out * dim * mlp_hidden
        return attention + mlp

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "paper": cls.paper,
            "summary": cls.summary,
            "knobs": {knob.name: knob.default for knob in cls.knobs},
            "tensorrt": cls.tensorrt,
        }


def check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise VitPruneError(f"--{name.replace('_', '-')} must be a positive number, not {value!r}")
