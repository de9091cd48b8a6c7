"""The fused ops as ``torch.library`` custom ops (namespace ``vitprune``).

A custom op is opaque to ``torch.export``: the exporter sees one call with static
output shapes (from ``register_fake``) and the translation table of :mod:`.emit`
turns it into one ``vitprune::VitPrune…`` node. Eager calls run the reference.
"""

from __future__ import annotations

import torch

from . import reference


@torch.library.custom_op("vitprune::topk_select", mutates_args=())
def topk_select(tokens: torch.Tensor, scores: torch.Tensor, num_prefix: int, keep: int) -> torch.Tensor:
    return reference.topk_select(tokens, scores, num_prefix, keep)


@topk_select.register_fake
def _(tokens, scores, num_prefix, keep):
    return tokens.new_empty((tokens.shape[0], num_prefix + keep, tokens.shape[2]))


@torch.library.custom_op("vitprune::vpa", mutates_args=())
def vpa(
    tokens: torch.Tensor,
    scores: torch.Tensor,
    keys: torch.Tensor,
    sizes: torch.Tensor,
    num_prefix: int,
    keep: int,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    return reference.vpa(tokens, scores, keys, sizes, num_prefix, keep, tau)


@vpa.register_fake
def _(tokens, scores, keys, sizes, num_prefix, keep, tau):
    batch, kept = tokens.shape[0], num_prefix + keep
    return tokens.new_empty((batch, kept, tokens.shape[2])), sizes.new_empty((batch, kept))


@torch.library.custom_op("vitprune::tome_merge", mutates_args=())
def tome_merge(
    tokens: torch.Tensor, keys: torch.Tensor, sizes: torch.Tensor, num_prefix: int, merges: int
) -> tuple[torch.Tensor, torch.Tensor]:
    return reference.tome_merge(tokens, keys, sizes, num_prefix, merges)


@tome_merge.register_fake
def _(tokens, keys, sizes, num_prefix, merges):
    batch, left = tokens.shape[0], tokens.shape[1] - merges
    return tokens.new_empty((batch, left, tokens.shape[2])), sizes.new_empty((batch, left))
