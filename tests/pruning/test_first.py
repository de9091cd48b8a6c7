"""``first``: the free pruning step — timm's blocks with the token axis sliced after attention."""

import torch

from tests.helpers import base_model
from vitprune_export import apply_method, keep_counts
from vitprune_export.pruning.flops import count_macs

TINY = "vitprune_tiny_patch4_32"


def sliced_timm_forward(model: torch.nn.Module, images: torch.Tensor, kept: list[int]) -> torch.Tensor:
    """The unpatched timm model, each block's tokens cut to the first ``kept[i]`` between attention and MLP."""
    x = model._pos_embed(model.patch_embed(images))
    x = model.norm_pre(model.patch_drop(x))
    for block, keep in zip(model.blocks, kept):
        x = x + block.ls1(block.attn(block.norm1(x)))
        x = x[:, :keep]
        x = x + block.ls2(block.mlp(block.norm2(x)))
    return model.forward_head(model.norm(x))


def test_first_is_the_timm_block_sliced_to_the_keep_counts():
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    reference = base_model(TINY)
    patched = apply_method(base_model(TINY), "first", rate=0.1).eval()
    kept = keep_counts(patched)
    assert kept[-1] < kept[0] < 65  # it prunes: 64 patches + the class token enter
    with torch.no_grad():
        expected = sliced_timm_forward(reference.eval(), images, kept)
        produced = patched(images)
    assert (produced - expected).abs().max().item() <= 1e-5


def test_first_has_the_keep_counts_and_macs_of_topk():
    first = apply_method(base_model(TINY), "first", rate=0.1)
    topk = apply_method(base_model(TINY), "topk", rate=0.1)
    assert keep_counts(first) == keep_counts(topk)
    assert count_macs(first) == count_macs(topk)
