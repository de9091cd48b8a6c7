"""Patching timm ViTs with a token-reduction method and a static schedule.

The small timm-specific layer (after ToMe's ``patch/timm.py``): it swaps the
class of the model and of each block for a subclass whose forward runs the
method, keeps every weight, and exposes the pieces of a block to the method
through :class:`TimmBlockOps`. All maths lives in :mod:`vitprune_export.pruning.methods`.

Supported: ``timm.models.vision_transformer.VisionTransformer`` (and subclasses
such as DeiT's distilled model) built from the standard ``Block`` and
``Attention`` — LayerScale, q/k-norm, scale-norm, gated attention, class,
distillation and register tokens included. Rate 0 reproduces the unpatched
model (tested).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .._compat import import_timm
from ..errors import VitPruneError, VitPruneWarning
from .methods import TokenReduction, get_method
from .methods.base import LayerPlan, TokenState
from .models import create_model
from .schedule import Schedule, build_schedule, load_removed_counts, parse_rates

INFO_ATTR = "vitprune_info"


class TimmBlockOps:
    """:class:`~vitprune_export.pruning.methods.base.BlockOps` for timm's ``Block``/``Attention``."""

    def __init__(self, block: torch.nn.Module):
        self.block = block
        self.attn = block.attn
        self.num_heads = self.attn.num_heads
        self.head_dim = self.attn.head_dim
        self.scale = self.attn.scale

    def norm1(self, x: torch.Tensor) -> torch.Tensor:
        return self.block.norm1(x)

    def qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B, H, N, D) of the normalised tokens ``h``, after q/k-norm."""
        batch, tokens, _ = h.shape
        qkv = self.attn.qkv(h).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        return self.attn.q_norm(q), self.attn.k_norm(k), v

    def attend(self, q, k, v, bias: torch.Tensor | None = None) -> torch.Tensor:
        """Fused ``softmax(qkᵀ·scale + bias)·v`` (B, H, Nq, D); ``bias`` broadcasts to (B, H, Nq, N)."""
        dropout = self.attn.attn_drop.p if self.attn.training else 0.0
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=self.scale)

    def project(self, heads_out: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Merge heads, optional scale-norm and gate (computed from ``h``, same rows), output projection."""
        batch, _, tokens, _ = heads_out.shape
        out = heads_out.transpose(1, 2).reshape(batch, tokens, self.attn.attn_dim)
        out = self.attn.norm(out)
        if getattr(self.attn, "gate", None) is not None:
            out = out * self.attn.gate(h).sigmoid()
        return self.attn.proj_drop(self.attn.proj(out))

    def attn_residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + self.block.drop_path1(self.block.ls1(y))

    def mlp_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block.drop_path2(self.block.ls2(self.block.mlp(self.block.norm2(x))))


class _StateHolder:
    """Shared by a model and its blocks: the token state of the forward pass in flight."""

    state = TokenState()


def _pruned_block_forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
    if attn_mask is not None or is_causal:
        raise VitPruneError("attention masks are not supported by token-pruned blocks")
    return self._vitprune_method.block_forward(self._vitprune_ops, x, self._vitprune_holder.state, self._vitprune_plan)


def _pruned_forward_features(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    self._vitprune_holder.state = TokenState()
    return self._vitprune_original_class.forward_features(self, x, *args, **kwargs)


def _swap_class(module: torch.nn.Module, methods: dict[str, Any]) -> None:
    original = getattr(module, "_vitprune_original_class", type(module))
    module._vitprune_original_class = original
    module.__class__ = type(f"Pruned{original.__name__}", (original,), methods)


def _check_supported(model: torch.nn.Module) -> None:
    import_timm()
    from timm.layers import Attention
    from timm.models.vision_transformer import Block, VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise VitPruneError(
            f"{type(model).__name__} is not a timm VisionTransformer; vitprune patches ViT/DeiT-style models "
            "(vit_*, deit_*, deit3_*, register-token ViTs)"
        )
    if getattr(model, "dynamic_img_size", False):
        raise VitPruneError("models built with dynamic_img_size=True have no static token count; build it without")
    for index, block in enumerate(model.blocks):
        original_block = getattr(block, "_vitprune_original_class", type(block))
        original_attn = type(getattr(block, "attn", None))
        if not issubclass(original_block, Block) or original_attn is not Attention:
            raise VitPruneError(
                f"block {index} is a {original_block.__name__} with {original_attn.__name__}; "
                "only timm's standard Block with Attention can be patched"
            )


def num_tokens_of(model: torch.nn.Module) -> int:
    """Tokens entering the first block: patches + prefix tokens (CLS, distillation, registers)."""
    return int(model.patch_embed.num_patches) + int(model.num_prefix_tokens)


def apply_method(
    model: torch.nn.Module,
    method: str | TokenReduction = "none",
    *,
    rate: float | None = None,
    rates: Sequence[float] | str | None = None,
    schedule: Sequence[int] | str | Path | Schedule | None = None,
    **method_kwargs: Any,
) -> torch.nn.Module:
    """Patch ``model`` in place with ``method`` and a static schedule; return it.

    Give one of ``rate`` (every block), ``rates`` (one per block, list or
    ``"0.1,0.1,…"``) or ``schedule`` (removed counts: a list, a JSON path or a
    :class:`Schedule`). None of them means no reduction. Weights are untouched;
    calling it again re-patches from the original classes.
    """
    _check_supported(model)
    if isinstance(method, str):
        method = get_method(method, **method_kwargs)
    elif method_kwargs:
        raise VitPruneError("pass method options either to get_method or here, not both")
    num_prefix = int(model.num_prefix_tokens)
    if method.requires_class_token() and getattr(model, "cls_token", None) is None:
        raise VitPruneError(
            f"method {method.name!r} scores tokens by class-token attention but this model has no class token; "
            "use a model with one, or --score magnitude"
        )
    if isinstance(rates, str):
        rates = parse_rates(rates)
    if isinstance(schedule, Schedule):
        schedule = list(schedule.removed)
    elif isinstance(schedule, (str, Path)):
        schedule = load_removed_counts(schedule)
    plan = build_schedule(
        num_tokens_of(model), num_prefix, len(model.blocks), rate=rate, rates=rates, removed=schedule, method=method
    )
    if not method.changes_token_count and method.name != "none" and _asks_for_reduction(rate, rates, schedule):
        warnings.warn(
            f"{method.name} keeps every token, so the rate/schedule is ignored; "
            f"its own options ({', '.join(knob.flag for knob in method.knobs)}) set what it prunes",
            VitPruneWarning,
            stacklevel=2,
        )

    holder = _StateHolder()
    for layer, block in enumerate(model.blocks):
        layer_plan = LayerPlan(layer, plan.tokens_in[layer], plan.removed[layer], num_prefix)
        method.setup(layer_plan)
        _swap_class(block, {"forward": _pruned_block_forward})
        block._vitprune_method = method
        block._vitprune_plan = layer_plan
        block._vitprune_ops = TimmBlockOps(block)
        block._vitprune_holder = holder
    _swap_class(model, {"forward_features": _pruned_forward_features})
    model._vitprune_holder = holder
    setattr(model, INFO_ATTR, {"method": method, "schedule": plan})
    return model


def _asks_for_reduction(rate, rates, schedule) -> bool:
    return bool(rate) or any(rates or ()) or any(schedule or ())


def pruning_info(model: torch.nn.Module) -> dict[str, Any]:
    """``{"method": TokenReduction, "schedule": Schedule}`` of a patched model."""
    info = getattr(model, INFO_ATTR, None)
    if info is None:
        raise VitPruneError("this model has not been patched; call vitprune_export.apply_method first")
    return info


def keep_counts(model: torch.nn.Module) -> list[int]:
    """Tokens left after each block of a patched model."""
    return list(pruning_info(model)["schedule"].tokens_out)


def create_pruned(
    model_name: str,
    method: str = "none",
    rate: float | None = None,
    rates: Sequence[float] | str | None = None,
    schedule: Sequence[int] | str | Path | None = None,
    weights: str | Path = "auto",
    model_kwargs: dict[str, Any] | None = None,
    **method_kwargs: Any,
) -> torch.nn.Module:
    """A timm ViT with ``weights`` (auto | random | path), patched with ``method``, in eval mode."""
    resolved = get_method(method, **method_kwargs)  # method errors before the model is built
    model = create_model(model_name, weights, **(model_kwargs or {}))
    return apply_method(model, resolved, rate=rate, rates=rates, schedule=schedule).eval()
