"""The fused ops (vitprune_export.export.ops): reference = method maths, custom ops, ONNX Runtime
execution and the standard-op decomposition, each checked on single-node graphs over several shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitprune_export.export.ops import DOMAIN, OPS, reference
from vitprune_export.pruning.methods import get_method
from vitprune_export.pruning.methods.base import AttentionView, LayerPlan

# (batch, tokens, channels, key dim, prefix, count): count = patch tokens kept (Top-K, VPA) or merges (ToMe)
SHAPES = [(2, 17, 8, 4, 1, 10), (1, 50, 16, 8, 5, 30), (3, 12, 4, 4, 0, 5), (2, 198, 32, 16, 2, 150)]
# ToMe: class token (odd and even N), distillation token, registers (odd P ≥ 3), no prefix (odd and even N)
TOME_SHAPES = [
    (2, 17, 8, 4, 1, 8),
    (1, 50, 16, 8, 5, 7),
    (3, 12, 4, 4, 0, 6),
    (2, 197, 32, 16, 1, 11),
    (1, 9, 4, 4, 1, 1),
    (2, 20, 8, 4, 2, 9),
    (1, 23, 8, 4, 3, 10),
    (2, 15, 4, 4, 0, 7),
    (2, 198, 16, 8, 2, 13),
]


def _inputs(batch, tokens, channels, key_dim, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, tokens, channels, generator=generator)
    scores = torch.rand(batch, tokens, generator=generator)
    keys = torch.randn(batch, tokens, key_dim, generator=generator)
    sizes = 1 + 3 * torch.rand(batch, tokens, generator=generator)
    return x, scores, keys, sizes


def _attention_view(keys: torch.Tensor, heads: int = 2) -> AttentionView:
    """An AttentionView whose mean key (over heads) is ``keys``."""
    k = keys.unsqueeze(1).repeat(1, heads, 1, 1)
    q = torch.randn_like(k)
    return AttentionView(q, k, torch.randn_like(k), scale=0.5, bias=None)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_references_equal_the_method_maths(shape):
    batch, tokens, channels, key_dim, prefix, keep = shape
    x, _, keys, sizes = _inputs(batch, tokens, channels, key_dim)
    view = _attention_view(keys)
    plan = LayerPlan(layer=0, tokens_in=tokens, remove=tokens - prefix - keep, num_prefix=prefix)
    scores = view.cls_attention

    topk_tokens, _ = get_method("topk").reduce(x, view, None, plan)
    assert torch.allclose(reference.topk_select(x, scores, prefix, keep), topk_tokens, atol=1e-6, rtol=0)

    vpa = get_method("topk-vpa", tau=0.01)
    vpa_tokens, vpa_sizes = vpa.reduce(x, view, sizes, plan)
    ref_tokens, ref_sizes = reference.vpa(x, scores, view.mean_key, sizes, prefix, keep, 0.01)
    assert torch.allclose(ref_tokens, vpa_tokens, atol=1e-6, rtol=0)
    assert torch.allclose(ref_sizes, vpa_sizes, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", TOME_SHAPES, ids=str)
def test_tome_reference_equals_the_method_and_conserves_size(shape):
    batch, tokens, channels, key_dim, prefix, merges = shape
    x, _, keys, sizes = _inputs(batch, tokens, channels, key_dim)
    view = _attention_view(keys)
    plan = LayerPlan(layer=0, tokens_in=tokens, remove=merges, num_prefix=prefix)
    method_tokens, method_sizes = get_method("tome").reduce(x, view, sizes, plan)
    ref_tokens, ref_sizes = reference.tome_merge(x, view.mean_key, sizes, prefix, merges)
    assert ref_tokens.shape == (batch, tokens - merges, channels)
    assert torch.allclose(ref_tokens, method_tokens, atol=1e-6, rtol=0)
    assert torch.allclose(ref_sizes, method_sizes, atol=1e-6, rtol=0)
    assert torch.allclose(ref_sizes.sum(1), sizes.sum(1), atol=1e-4)


def test_vpa_conserves_size():
    x, scores, keys, sizes = _inputs(2, 40, 8, 4)
    _, new_sizes = reference.vpa(x, scores, keys, sizes, 1, 20, 0.001)
    assert new_sizes.shape == (2, 21)
    assert torch.allclose(new_sizes.sum(1), sizes.sum(1), rtol=1e-5)


def test_custom_ops_pass_opcheck():
    """register_fake shapes agree with the eager op (torch.library.opcheck)."""
    from vitprune_export.export.ops import custom

    x, scores, keys, sizes = _inputs(2, 17, 8, 4)
    torch.library.opcheck(custom.topk_select, (x, scores, 1, 10))
    torch.library.opcheck(custom.vpa, (x, scores, keys, sizes, 1, 10, 0.001))
    torch.library.opcheck(custom.tome_merge, (x, keys, sizes, 1, 8))


# -- single-node ONNX graphs ---------------------------------------------------------------------------------
def _node_model(op: str, shape, tau: float = 0.001):
    """A graph holding one plugin node, static token axes, dynamic batch; and its feeds."""
    import onnx
    from onnx import TensorProto, helper

    batch, tokens, channels, key_dim, prefix, count = shape
    x, scores, keys, sizes = _inputs(batch, tokens, channels, key_dim)
    spec = OPS[op]
    all_inputs = {
        "tokens": (x, ["batch", tokens, channels]),
        "scores": (scores, ["batch", tokens]),
        "keys": (keys, ["batch", tokens, key_dim]),
        "sizes": (sizes, ["batch", tokens]),
    }
    out_tokens = tokens - count if op == "VitPruneToMeMerge" else prefix + count
    out_shapes = {
        "kept_tokens": ["batch", out_tokens, channels],
        "merged_tokens": ["batch", out_tokens, channels],
        "kept_sizes": ["batch", out_tokens],
        "merged_sizes": ["batch", out_tokens],
    }
    count_name = "merges" if op == "VitPruneToMeMerge" else "keep"
    attributes = {"num_prefix": prefix, count_name: count, **spec.plugin_attributes}
    if "tau" in spec.attributes:
        attributes["tau"] = tau
    node = helper.make_node(op, list(spec.inputs), list(spec.outputs), name=f"{op}_0", domain=DOMAIN, **attributes)
    graph = helper.make_graph(
        [node],
        "one_node",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, all_inputs[name][1]) for name in spec.inputs],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, out_shapes[name]) for name in spec.outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    feeds = {name: all_inputs[name][0] for name in spec.inputs}
    return model, feeds, {name: value for name, value in attributes.items() if name in spec.attributes}


def _run(model, feeds, custom_ops: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if custom_ops:
        from vitprune_export.export.ops.onnxruntime import register_custom_ops

        register_custom_ops(options)
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {name: value.numpy() for name, value in feeds.items()})


def _cases():
    for shape in SHAPES:
        yield "VitPruneTopKSelect", shape
        yield "VitPruneVPA", shape
    for shape in TOME_SHAPES:
        yield "VitPruneToMeMerge", shape


@pytest.mark.parametrize("op,shape", list(_cases()), ids=str)
def test_onnxruntime_and_standard_decomposition_match_the_reference(op, shape):
    from vitprune_export.export.ops.reference import REFERENCES
    from vitprune_export.export.rewrite import forbidden_ops, plugin_nodes, rewrite_model

    model, feeds, attributes = _node_model(op, shape)
    expected = REFERENCES[op](*feeds.values(), **attributes)
    expected = expected if isinstance(expected, tuple) else (expected,)

    produced = _run(model, feeds, custom_ops=True)
    for want, got in zip(expected, produced):
        assert got.shape == tuple(want.shape)
        assert np.abs(got - want.numpy()).max() <= 1e-6

    standard, names = rewrite_model(model, "standard")
    assert names == [f"{op}_0"] and plugin_nodes(standard) == [] and forbidden_ops(standard) == []
    assert all(opset.domain != DOMAIN for opset in standard.opset_import)
    produced = _run(standard, feeds, custom_ops=False)
    for want, got in zip(expected, produced):  # float32 reassociation, amplified ~1/(rowsum·τ) by the VPA softmax
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


# Hand-made keys (unit vectors at these angles, so cosine similarity = cos(angle difference)); token i holds the
# value i, sizes 1. Expected outputs follow the official tome/merge.py: A = even positions over all tokens.
OFFICIAL_PAIRING_CASES = {
    # class token: 4 → 5 and 2 → 1 merge (the class token, equal to token 1, is protected); token 6 stays
    "class token": ((10, 10, 11, 60, 100.5, 101, 63), 1, 2, [0, 6, 1.5, 3, 4.5], [1, 1, 2, 1, 2]),
    # class + distillation token: 6 → 7 and 4 → 5; token 2, equal to the distillation token, cannot merge into it
    "distillation token": ((0, 50, 50, 58, 170, 171, 300, 302), 2, 2, [0, 1, 2, 3, 4.5, 6.5], [1, 1, 1, 1, 2, 2]),
    # no prefix: 2 → 3; the unmerged A tokens stay in edge order 6, 4, 0
    "no prefix": ((0, 30, 100, 101, 200, 210, 300, 304), 0, 1, [6, 4, 0, 1, 2.5, 5, 7], [1, 1, 1, 1, 2, 1, 1]),
}


@pytest.mark.parametrize("case", list(OFFICIAL_PAIRING_CASES))
def test_every_tome_form_gives_the_official_pairing(case):
    """Method, reference, ONNX Runtime custom op and standard-op decomposition on hand-made inputs."""
    from vitprune_export.export.rewrite import rewrite_model

    angles, prefix, merges, want_tokens, want_sizes = OFFICIAL_PAIRING_CASES[case]
    tokens = len(angles)
    radians = torch.tensor(angles, dtype=torch.float32).deg2rad()
    keys = torch.stack([radians.cos(), radians.sin()], dim=-1)[None]
    x, sizes = torch.arange(float(tokens)).view(1, tokens, 1), torch.ones(1, tokens)
    plan = LayerPlan(layer=0, tokens_in=tokens, remove=merges, num_prefix=prefix)
    model, _, _ = _node_model("VitPruneToMeMerge", (1, tokens, 1, 2, prefix, merges))
    feeds = {"tokens": x, "keys": keys, "sizes": sizes}
    forms = {
        "method": get_method("tome").reduce(x, _attention_view(keys), sizes, plan),
        "reference": reference.tome_merge(x, keys, sizes, prefix, merges),
        "onnxruntime": _run(model, feeds, custom_ops=True),
        "standard": _run(rewrite_model(model, "standard")[0], feeds, custom_ops=False),
    }
    for form, (got_tokens, got_sizes) in forms.items():
        assert np.allclose(np.asarray(got_tokens).flatten(), want_tokens, atol=1e-6), form
        assert np.allclose(np.asarray(got_sizes).flatten(), want_sizes, atol=1e-6), form


def test_sort_unmerged_without_class_token_has_no_plugin_form_and_is_the_hint(tmp_path):
    from tests.helpers import base_model
    from vitprune_export import apply_method, export_onnx
    from vitprune_export.errors import VitPruneError

    assert "--sort-unmerged" in get_method("tome").near_tie_hint(0)
    assert get_method("tome").near_tie_hint(1) == get_method("tome", sort_unmerged=True).near_tie_hint(0) == ""
    model = base_model("vitprune_tiny_patch4_32", class_token=False, global_pool="avg", depth=2)
    apply_method(model, "tome", rate=0.1, sort_unmerged=True)
    with pytest.raises(VitPruneError, match="--sort-unmerged has no plugin form"):
        export_onnx(model, tmp_path / "tome.onnx", plugins=True)
    assert list(tmp_path.iterdir()) == []


def test_decomposition_refuses_topk_beyond_tensorrt_limit():
    from vitprune_export.errors import VitPruneError
    from vitprune_export.export.rewrite import rewrite_model

    model, _, _ = _node_model("VitPruneTopKSelect", (1, 3900, 4, 4, 1, 3850))
    with pytest.raises(VitPruneError, match="K=3850 > 3840"):
        rewrite_model(model, "standard")


def test_plugin_mode_is_off_by_default_and_nests():
    from vitprune_export.export.ops.emit import plugin_export_mode
    from vitprune_export.pruning.methods.fused import fused_step
    from vitprune_export.pruning.methods.fused import fused_steps_active as plugin_mode_active

    assert not plugin_mode_active() and fused_step("tome_merge") is None
    with plugin_export_mode():
        with plugin_export_mode():
            assert plugin_mode_active()
        assert plugin_mode_active() and fused_step("tome_merge") is torch.ops.vitprune.tome_merge
    assert not plugin_mode_active() and fused_step("tome_merge") is None


def test_tensorrt_status_names_the_plugin():
    from vitprune_export.pruning.methods import method_class

    assert "VitPruneTopKSelect" in method_class("topk").tensorrt
    assert "VitPruneVPA" in method_class("topk-vpa").tensorrt
    assert "VitPruneToMeMerge" in method_class("tome").tensorrt


@pytest.mark.parametrize("op", ["VitPruneTopKSelect", "VitPruneVPA"])
@pytest.mark.parametrize(
    "case", ["nan", "nan-and-inf", "ties", "all-equal"], ids=["one NaN", "NaN beside +inf", "ties", "all equal"]
)
def test_every_form_keeps_the_same_tokens_on_nan_inf_and_ties(op, case):
    """The plugins' total order (NaN as +inf, equal scores in index order) in the reference, the ONNX Runtime
    kernel and the standard-op decomposition: all three keep the same tokens, in the same order."""
    from vitprune_export.export.ops.reference import REFERENCES
    from vitprune_export.export.rewrite import rewrite_model

    shape = (2, 17, 8, 8, 1, 6)
    model, feeds, attributes = _node_model(op, shape)
    scores = feeds["scores"].clone()
    if case == "nan":
        scores[0, 5] = float("nan")
    elif case == "nan-and-inf":
        scores[:, 3], scores[:, 9], scores[:, 12] = float("inf"), float("nan"), float("nan")
    elif case == "ties":
        scores = (scores * 4).round() / 4
    else:
        scores = torch.full_like(scores, 0.5)
    feeds["scores"] = scores
    expected = REFERENCES[op](*feeds.values(), **attributes)
    expected = expected if isinstance(expected, tuple) else (expected,)
    kept = expected[0]
    assert not torch.isnan(kept).any()
    for produced in (_run(model, feeds, custom_ops=True), _run(rewrite_model(model, "standard")[0], feeds, False)):
        np.testing.assert_allclose(produced[0], kept.numpy(), rtol=0, atol=0)  # the same rows, gathered exactly
