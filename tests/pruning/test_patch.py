"""Patching timm ViTs: rate 0 equals the unpatched model, counts follow the schedule."""

import pytest
import torch

from tests.helpers import MODEL_CASES, base_model
from vitprune_export import apply_method, keep_counts, list_methods
from vitprune_export.errors import VitPruneError, VitPruneWarning
from vitprune_export.pruning.models import create_model

# timm features ToMe's patch missed as timm grew: LayerScale, q/k-norm, registers, distillation token.
RATE_ZERO_MODELS = {
    **MODEL_CASES,
    "vit_small_patch16_224:qk_norm": ("vit_small_patch16_224", {"qk_norm": True, "depth": 4}),
    "deit_tiny_distilled_patch16_224": ("deit_tiny_distilled_patch16_224", {}),
}


def _case(key):
    value = RATE_ZERO_MODELS[key]
    return value if isinstance(value, tuple) else (key, value)


@pytest.mark.parametrize("key", list(RATE_ZERO_MODELS))
def test_rate_zero_reproduces_the_unpatched_model(key):
    name, kwargs = _case(key)
    reference = base_model(name, **kwargs)
    images = torch.randn(2, *reference.patch_embed.proj.weight.shape[1:2], *reference.patch_embed.img_size)
    with torch.no_grad():
        expected = reference(images)
        for method in list_methods():
            # BSPF keeps every token and ignores the rate; it prunes nothing when it keeps every attention entry
            knobs = {"keep_ratio": 1.0} if method == "bspf" else {}
            patched = apply_method(base_model(name, **kwargs), method, rate=0.0, **knobs)
            difference = (patched(images) - expected).abs().max().item()
            assert difference <= 1e-5, f"{method} at rate 0 differs by {difference}"


def test_bspf_changes_attention_whatever_the_rate_and_says_the_rate_is_ignored():
    reference = base_model("deit_tiny_patch16_224", depth=2)
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = reference(images)
        with pytest.warns(VitPruneWarning, match="bspf keeps every token, so the rate/schedule is ignored"):
            patched = apply_method(base_model("deit_tiny_patch16_224", depth=2), "bspf", rate=0.3)
        assert keep_counts(patched) == [197, 197]
        assert (patched(images) - expected).abs().max().item() > 1e-4  # half of each attention block is pruned


@pytest.mark.parametrize("method", list_methods())
def test_keep_counts_follow_the_schedule_and_the_output_shape(method):
    model = apply_method(base_model("deit_tiny_patch16_224"), method, rate=0.06)
    counts = keep_counts(model)
    from vitprune_export.pruning.methods import get_method

    if get_method(method).changes_token_count:
        assert counts == [186, 175, 165, 156, 147, 139, 131, 124, 117, 110, 104, 98]
    else:
        assert counts == [197] * 12
    seen = []
    hooks = [block.register_forward_hook(lambda m, i, o: seen.append(o.shape[1])) for block in model.blocks]
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 224, 224))
    for hook in hooks:
        hook.remove()
    assert seen == counts
    assert logits.shape == (2, 1000) and torch.isfinite(logits).all()


def test_register_tokens_are_never_removed():
    """Prefix tokens (CLS + 4 registers) leave a pruning block exactly as from the unpruned block."""
    name, kwargs = "vit_small_patch14_reg4_dinov2", {"img_size": 224}
    pruned = apply_method(base_model(name, **kwargs), "topk", rate=0.2)
    unpruned = base_model(name, **kwargs)
    assert pruned.num_prefix_tokens == 5
    tokens = torch.randn(2, 261, 384)
    with torch.no_grad():
        out_pruned = pruned.blocks[0](tokens)
        out_unpruned = unpruned.blocks[0](tokens)
    assert out_pruned.shape == (2, 261 - 52, 384)  # floor(0.2 · 261) = 52 removed
    torch.testing.assert_close(out_pruned[:, :5], out_unpruned[:, :5], atol=1e-5, rtol=1e-5)


def test_magnitude_scores_need_no_class_token():
    model = create_model("vit_little_patch16_reg1_gap_256", "random")
    assert model.cls_token is None
    with pytest.raises(VitPruneError, match="no class token"):
        apply_method(model, "topk", rate=0.1)
    apply_method(model, "magnitude", rate=0.1)
    apply_method(model, "tome", rate=0.1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 1000)


def test_repatching_starts_from_the_original_classes():
    model = base_model("deit_tiny_patch16_224")
    apply_method(model, "topk", rate=0.1)
    apply_method(model, "tome", rate=0.06)
    assert keep_counts(model)[0] == 186
    assert type(model).__name__ == "PrunedVisionTransformer"
    assert type(model).__mro__[1].__name__ == "VisionTransformer"


def test_non_vit_models_are_refused_clearly():
    with pytest.raises(VitPruneError, match="not a timm VisionTransformer"):
        apply_method(torch.nn.Linear(2, 2), "topk", rate=0.1)


def test_unknown_method_and_option_suggest_near_misses():
    with pytest.raises(VitPruneError, match="did you mean 'topk-vpa'"):
        apply_method(base_model("deit_tiny_patch16_224"), "topk-vap", rate=0.1)
    with pytest.raises(VitPruneError, match="has no option 'taux'.*did you mean 'tau'"):
        apply_method(base_model("deit_tiny_patch16_224"), "topk-vpa", rate=0.1, taux=1.0)
