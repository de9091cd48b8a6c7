"""The seed methods ATPViT (topk, evit), PPT and BSPF-ViT: their equations on hand-made tensors,
their equivalences, FLOPs, CLI options, and static-shape export with parity at batch 1 and 3.

Papers: ATPViT §3.1–3.2 Eq. 5; PPT thesis §3.3 Eq. 3.3 (arXiv 2310.01812); BSPF-ViT §3.1–3.4, Alg. 1, Eq. 3–8.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers import KEEP_COUNTS_197_AT_006, MATRIX_DEPTH, base_model
from vitprune_export import apply_method, keep_counts
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.flops import count_macs
from vitprune_export.pruning.methods import get_method, list_methods
from vitprune_export.pruning.methods.atpvit import fuse_attention_rows
from vitprune_export.pruning.methods.base import AttentionView, LayerPlan, TokenReduction, TokenState
from vitprune_export.pruning.methods.bspf import (
    best_matching_queries,
    block_validity,
    bspf_attention,
    fuse_pruned_entries,
    keep_counts_per_block,
    smooth_blocks,
    smoothing_kernel,
    to_blocks,
)
from vitprune_export.pruning.methods.ppt import (
    DEFAULT_TAU,
    choose_pruning,
    patch_score_variance,
    pool_branch,
    prune_branch,
)
from vitprune_export.pruning.patch import TimmBlockOps
from vitprune_export.pruning.scores import ats_score

TINY = "vitprune_tiny_patch4_32"
SEED_METHODS = ("atpvit-topk", "atpvit-evit", "ppt", "bspf")


def run(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images)


@pytest.fixture(scope="module")
def tiny():
    return base_model(TINY)


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_registry_has_the_seed_methods_with_their_knobs():
    names = list_methods()
    assert all(name in names for name in SEED_METHODS)
    assert get_method("ppt").knob_values() == {"tau": DEFAULT_TAU, "sort_pruned": False}
    assert DEFAULT_TAU == 7e-5  # the official PPT evaluation command: --threshold 7e-5
    assert get_method("bspf").knob_values() == {
        "block_size": 16,
        "keep_ratio": 0.5,
        "smoothing": "uniform",
        "shared_qk": False,
    }
    assert get_method("atpvit-evit").knob_values() == {"score": "cls-attn"}


# ------------------------------------------------------------------------------------------ ATPViT
def test_atpvit_kept_rows_equal_full_attention_rows_of_the_kept_queries(tiny):
    """§3.1: keys/values still see every token, so a kept query's output is exactly its full-attention output."""
    block = copy.deepcopy(tiny).blocks[0]
    ops = TimmBlockOps(block)
    x = torch.randn(2, 65, 96, generator=torch.Generator().manual_seed(0))
    plan = LayerPlan(0, 65, 20, 1)
    with torch.no_grad():
        full = TokenReduction().block_forward(ops, x, TokenState(), LayerPlan(0, 65, 0, 1))
        pruned = get_method("atpvit-topk").block_forward(ops, x, TokenState(), plan)
        q, k, v = ops.qkv(ops.norm1(x))
        cls_attention = AttentionView(q, k, v, ops.scale, None).cls_attention
    kept = cls_attention[:, 1:].topk(45 - 1, dim=-1).indices + 1
    rows = torch.cat([torch.zeros(2, 1, dtype=torch.long), kept], dim=1)
    assert pruned.shape == (2, 45, 96)
    torch.testing.assert_close(pruned, full.gather(1, rows[..., None].expand(-1, -1, 96)), atol=1e-5, rtol=0)


def test_atpvit_topk_equals_post_attention_topk_with_fewer_macs(tiny, images):
    """The paper's "no further accuracy loss" over Top-K: the same outputs, fewer MACs."""
    reference = apply_method(copy.deepcopy(tiny), "topk", rate=0.1)
    inside = apply_method(copy.deepcopy(tiny), "atpvit-topk", rate=0.1)
    torch.testing.assert_close(run(inside, images), run(reference, images), atol=1e-5, rtol=0)
    assert keep_counts(inside) == keep_counts(reference) == [59, 54, 49, 45, 41, 37]
    assert count_macs(inside).macs < count_macs(reference).macs


def test_atpvit_evit_block_is_kept_full_attention_rows_plus_their_eq5_fusion(tiny):
    """§3.2: kept rows as full attention; the fused row is Σ w_i (x_i + y_i) with w the normalised scores of Eq. 5."""
    block = copy.deepcopy(tiny).blocks[1]
    ops = TimmBlockOps(block)
    x = torch.randn(2, 65, 96, generator=torch.Generator().manual_seed(2))
    plan = LayerPlan(1, 65, 10, 1)  # keep CLS + 53 patches + 1 fused = 55 tokens
    with torch.no_grad():
        pruned = get_method("atpvit-evit").block_forward(ops, x, TokenState(), plan)
        h = ops.norm1(x)
        q, k, v = ops.qkv(h)
        after_attention = ops.attn_residual(x, ops.project(ops.attend(q, k, v), h))  # every row, full attention
        scores = AttentionView(q, k, v, ops.scale, None).cls_attention
        order = scores[:, 1:].argsort(dim=-1, descending=True) + 1
        kept, removed = order[:, :53], order[:, 53:]
        weights = scores.gather(1, removed)
        weights = weights / weights.sum(dim=1, keepdim=True)
        fused = (weights.unsqueeze(-1) * after_attention.gather(1, removed[..., None].expand(-1, -1, 96))).sum(
            1, keepdim=True
        )
        rows = torch.cat(
            [after_attention[:, :1], after_attention.gather(1, kept[..., None].expand(-1, -1, 96)), fused], 1
        )
        expected = ops.mlp_residual(rows)
    assert pruned.shape == (2, 55, 96)
    torch.testing.assert_close(pruned, expected, atol=1e-5, rtol=0)


def test_atpvit_evit_fused_row_is_the_importance_weighted_attention_row():
    """Eq. 5: a_fused = Σ_i (s_i / Σ_j s_j) a_i, the same weights in every head."""
    rows = torch.tensor([[[[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]], [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]])  # (1, 2, 2, 3)
    fused = fuse_attention_rows(rows, torch.tensor([[1.0, 3.0]]))
    expected = torch.tensor([[[[0.125, 0.275, 0.6]], [[0.25, 0.0, 0.75]]]])
    torch.testing.assert_close(fused, expected)
    torch.testing.assert_close(fused.sum(-1), torch.ones(1, 2, 1))


def test_atpvit_block_macs_count_the_saving_inside_attention():
    dim, hidden, n, n_out = 384, 1536, 197, 186
    plan = LayerPlan(0, n, n - n_out, 1)
    topk = get_method("topk").block_macs(dim, hidden, plan)
    assert topk == 4 * n * dim**2 + 2 * n * n * dim + 2 * n_out * dim * hidden
    mlp = 2 * n_out * dim * hidden
    assert get_method("atpvit-topk").block_macs(dim, hidden, plan) == (
        3 * n * dim**2 + n_out * n * dim + n_out * n * dim + n_out * dim**2 + mlp
    )
    # EViT variant: QKᵀ for every row (the removed rows' softmax feeds the fused row), A·V and proj on N' rows
    assert get_method("atpvit-evit").block_macs(dim, hidden, plan) == (
        3 * n * dim**2 + n * n * dim + n_out * n * dim + n_out * dim**2 + mlp
    )
    # a score that reads the whole attention matrix pays for all of QKᵀ
    assert get_method("atpvit-topk", score="entropy").block_macs(dim, hidden, plan) == (
        get_method("atpvit-evit").block_macs(dim, hidden, plan)
    )
    assert get_method("atpvit-topk").block_macs(dim, hidden, LayerPlan(0, n, 0, 1)) == (
        get_method("none").block_macs(dim, hidden, LayerPlan(0, n, 0, 1))
    )


def test_flops_cli_reports_the_atpvit_saving():
    from vitprune_export.cli import app

    runner = CliRunner()
    ratios = {}
    for method in ("topk", "atpvit-topk"):
        result = runner.invoke(
            app, ["flops", "--method", method, "--rate", "0.06", "--model", "deit_tiny_patch16_224", "--json"]
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["keep_counts"][-1] == 98  # the VPA paper's schedule for r = 0.06: 197 → … → 98
        ratios[method] = data["ratio"]
    assert ratios["atpvit-topk"] < ratios["topk"] < 1.0


# ------------------------------------------------------------------------------------------ PPT
def hand_made_ppt_inputs():
    """Sample 0: the class token attends to one patch (high ATS variance); sample 1: flat attention, equal ‖v‖."""
    tokens, depth = 9, 4
    generator = torch.Generator().manual_seed(0)
    k = torch.randn(2, 1, tokens, depth, generator=generator)
    q = torch.zeros(2, 1, tokens, depth)
    q[0, 0, 0] = 8.0 * k[0, 0, 3]  # sharp CLS row in sample 0
    v = torch.zeros(2, 1, tokens, depth)
    v[..., 0] = 1.0  # ‖v‖ = 1 everywhere: sample 1's ATS scores are all equal
    x = torch.randn(2, tokens, 6, generator=generator)
    return x, AttentionView(q, k, v, 1.0, None)


def test_ppt_prunes_the_high_variance_sample_and_pools_the_flat_one_in_one_batch():
    """Thesis Eq. 3.3: policy = pruning if var(Score) > τ else pooling, per image."""
    x, view = hand_made_ppt_inputs()
    scores = ats_score(x, view)
    assert choose_pruning(scores, 1, DEFAULT_TAU).tolist() == [True, False]
    plan = LayerPlan(0, 9, 3, 1)
    tokens, size = get_method("ppt").reduce(x, view, None, plan)
    ones = torch.ones(2, 9)
    pruned, pruned_size = prune_branch(x, ones, scores, 1, plan.tokens_out - 1)
    pooled, pooled_size = pool_branch(x, ones, view.mean_key, 1, plan.remove)
    assert tokens.shape == pruned.shape == pooled.shape == (2, 6, 6)  # both branches remove the same count
    torch.testing.assert_close(tokens[0], pruned[0])
    torch.testing.assert_close(tokens[1], pooled[1])
    torch.testing.assert_close(size[0], pruned_size[0])
    torch.testing.assert_close(size[1], pooled_size[1])
    assert size[1].sum() == 8 + 1  # pooling conserves sizes (8 patches + CLS)
    assert size[0].sum() == 5 + 1  # pruning keeps the sizes of the kept tokens only
    # sample 0 keeps token 3, the one the class token attends to
    assert any(torch.allclose(row, x[0, 3]) for row in tokens[0])


def test_ppt_pruning_keeps_the_prefix_then_the_kept_tokens_in_score_order():
    """The official order: PPT sorts all tokens by score with the class token's set to 2, so the class token
    comes first and the kept patch tokens follow best first (not in position order)."""
    x = torch.arange(9.0)[None, :, None].expand(1, 9, 2).clone()  # token i holds the value i
    ones = torch.ones(1, 9)
    scores = torch.tensor([[0.0, 0.1, 0.6, 0.2, 0.8, 0.3, 0.9, 0.4, 0.7]])
    pruned, pruned_size = prune_branch(x, ones, scores, 1, 4)
    assert pruned[0, :, 0].tolist() == [0.0, 6.0, 4.0, 8.0, 2.0]
    # the departure --sort-pruned: the same tokens in position order
    pruned, _ = prune_branch(x, ones, scores, 1, 4, sort_pruned=True)
    assert pruned[0, :, 0].tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert "--sort-pruned" in get_method("ppt").near_tie_hint(1)
    assert get_method("ppt", sort_pruned=True).near_tie_hint(1) == ""
    # with a distillation token both prefix tokens stay first, whatever their scores
    scores = torch.tensor([[0.0, 0.0, 0.6, 0.2, 0.8, 0.3, 0.9, 0.4, 0.7]])
    pruned, _ = prune_branch(x, ones, scores, 2, 3)
    assert pruned[0, :, 0].tolist() == [0.0, 1.0, 6.0, 4.0, 8.0]


def test_ppt_pooling_splits_all_tokens_with_the_class_token_first_in_a():
    """PPT pools with the official ToMe step: A = positions 0, 2, 4, 6 (class token protected), B = 1, 3, 5."""
    angles = torch.tensor([10.0, 10.0, 11.0, 60.0, 100.5, 101.0, 63.0]).deg2rad()
    keys = torch.stack([angles.cos(), angles.sin()], dim=-1)[None]  # cosine similarity = cos(angle difference)
    x = torch.arange(7.0).view(1, 7, 1)  # token i holds the value i
    pooled, pooled_size = pool_branch(x, torch.ones(1, 7), keys, 1, 2)
    # 4 → 5 and 2 → 1 merge: [class token, unmerged A token 6, B tokens (1+2)/2, 3, (5+4)/2]
    assert pooled.flatten().tolist() == [0.0, 6.0, 1.5, 3.0, 4.5]
    assert pooled_size.flatten().tolist() == [1.0, 1.0, 2.0, 1.0, 2.0]


def test_ppt_prunes_at_a_variance_equal_to_tau():
    """The official code pools when var < τ and prunes otherwise."""
    x, view = hand_made_ppt_inputs()
    scores = ats_score(x, view)
    variance = patch_score_variance(scores, 1)
    assert choose_pruning(scores, 1, float(variance[0])).tolist() == [True, False]
    assert choose_pruning(scores, 1, float(variance[0]) * (1 + 1e-6)).tolist() == [False, False]


def test_ppt_tau_moves_the_decision():
    x, view = hand_made_ppt_inputs()
    scores = ats_score(x, view)
    assert choose_pruning(scores, 1, 1.0).tolist() == [False, False]  # τ above every variance: always pool
    assert choose_pruning(scores, 1, 1e-12).tolist() == [True, False]  # the flat sample's variance is 0


def test_ppt_caps_the_count_at_half_the_patch_tokens(tiny):
    model = apply_method(copy.deepcopy(tiny), "ppt", rate=0.6)
    assert keep_counts(model)[0] == 65 - 32
    with pytest.raises(VitPruneError, match="ppt can remove at most 32"):
        apply_method(copy.deepcopy(tiny), "ppt", schedule=[33, 0, 0, 0, 0, 0])
    with pytest.raises(VitPruneError, match="--tau must be a positive number"):
        get_method("ppt", tau=-1.0)


def test_ppt_needs_a_class_token():
    model = base_model(TINY, class_token=False, global_pool="avg")
    with pytest.raises(VitPruneError, match="no class token"):
        apply_method(model, "ppt", rate=0.1)


# ------------------------------------------------------------------------------------------ BSPF
def test_bspf_smoothing_is_eq_3_with_a_zero_border():
    block = torch.zeros(1, 1, 1, 1, 4, 4)
    block[..., 0, 0] = 9.0
    smoothed = smooth_blocks(block, smoothing_kernel("uniform"))[0, 0, 0, 0]
    expected = torch.zeros(4, 4)
    expected[:2, :2] = 1.0  # the 3×3 neighbourhood of (0, 0), cut at the border
    torch.testing.assert_close(smoothed, expected)
    weights = torch.arange(9.0).reshape(3, 3)
    weights = weights / weights.sum()
    delta = torch.zeros(1, 1, 1, 1, 5, 5)
    delta[..., 2, 2] = 1.0
    # S(i, j) = Σ w_{k,l} A(i−k, j−l): a delta at (2, 2) gives S(2+k, 2+l) = w_{k,l}
    torch.testing.assert_close(smooth_blocks(delta, weights)[0, 0, 0, 0, 1:4, 1:4], weights)
    torch.testing.assert_close(smooth_blocks(block, smoothing_kernel("none")), block)


def random_qk(tokens: int, heads: int = 2, depth: int = 8, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, heads, tokens, depth, generator=generator), torch.randn(
        2, heads, tokens, depth, generator=generator
    )


def test_bspf_keeps_exactly_the_top_half_of_every_block_and_rows_sum_to_one():
    q, k = random_qk(32)
    probabilities, keep = bspf_attention(q, k, 8**-0.5, 8, 0.5, smoothing_kernel("uniform"))
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(2, 2, 32))
    keep_blocks = to_blocks(keep, 8)
    assert (keep_blocks.sum(dim=(-2, -1)) == 32).all()  # 50 % of 8×8 in every block
    attention = ((q @ k.transpose(-2, -1)) * 8**-0.5).softmax(-1)
    scores = smooth_blocks(to_blocks(attention, 8), smoothing_kernel("uniform"))
    kept_min = torch.where(keep_blocks > 0, scores, torch.full_like(scores, 9.0)).amin(dim=(-2, -1))
    pruned_max = torch.where(keep_blocks > 0, torch.full_like(scores, -9.0), scores).amax(dim=(-2, -1))
    assert (kept_min > pruned_max).all()  # the reserved entries are the block's top scores
    assert ((probabilities > 0) == (keep > 0)).all()  # pruned entries stay at exactly zero


def test_bspf_partial_blocks_count_only_real_entries():
    assert keep_counts_per_block(37, 8, 0.5) == [[32] * 4 + [20]] * 4 + [[20] * 4 + [13]]
    q, k = random_qk(37)
    _, keep = bspf_attention(q, k, 1.0, 8, 0.5, smoothing_kernel("uniform"))
    padded = torch.nn.functional.pad(keep, (0, 3, 0, 3))
    counts = to_blocks(padded, 8).sum(dim=(-2, -1))
    assert counts[0, 0].tolist() == keep_counts_per_block(37, 8, 0.5)


def reference_matching(q_chunk: torch.Tensor, valid: torch.Tensor):
    """Eq. 5 written out: argmax over the other valid queries of the chunk of the cosine similarity."""
    size = q_chunk.shape[0]
    best, rho = [], []
    for i in range(size):
        candidates = [j for j in range(size) if j != i and valid[j]]
        if not candidates:
            best.append(0), rho.append(0.0)
            continue
        sims = {j: float(torch.nn.functional.cosine_similarity(q_chunk[i], q_chunk[j], dim=0)) for j in candidates}
        j = max(sims, key=sims.get)
        best.append(j), rho.append(max(sims[j], 0.0))
    return best, rho


def test_bspf_matching_is_eq_5():
    q = torch.randn(1, 1, 2, 4, 5, generator=torch.Generator().manual_seed(3))  # 2 chunks of 4 queries
    _, query_valid, _ = block_validity(6, 4)  # the second chunk has two real queries
    index, rho = best_matching_queries(q, query_valid)
    for chunk in range(2):
        best, expected_rho = reference_matching(q[0, 0, chunk], query_valid[chunk])
        for i in range(4 if chunk == 0 else 2):
            assert index[0, 0, chunk, i].item() == best[i]
            assert rho[0, 0, chunk, i].item() == pytest.approx(expected_rho[i], abs=1e-6)


def test_bspf_fusion_is_eq_6_to_8():
    """Row i's pruned entries flow to its best row i_b with α = ρ_i · S_H^i, only onto reserved entries."""
    generator = torch.Generator().manual_seed(4)
    size = 4
    attention = torch.rand(1, 1, 1, 1, size, size, generator=generator) + 0.1
    keep = (torch.rand(1, 1, 1, 1, size, size, generator=generator) > 0.5).float()
    match = torch.tensor([[[[1, 0, 3, 2]]]])
    rho = torch.tensor([[[[0.9, 0.8, 0.5, 0.0]]]])
    reserved, pruned = attention * keep, attention * (1 - keep)
    fused = fuse_pruned_entries(reserved, pruned, keep, match, rho, torch.tensor([size]))[0, 0, 0, 0]
    expected = reserved[0, 0, 0, 0].clone()
    keep2 = keep[0, 0, 0, 0]
    for i in range(size):
        best = int(match[0, 0, 0, i])
        hamming = float((keep2[i] - keep2[best]).abs().sum()) / size  # Eq. 7
        alpha = float(rho[0, 0, 0, i]) * (1 - hamming)
        for j in range(size):
            if keep2[best, j] > 0:  # "updated only if A^r(i_b, j) > 0"
                expected[best, j] += alpha * pruned[0, 0, 0, 0, i, j]
    torch.testing.assert_close(fused, expected)


def test_bspf_shared_qk_gives_a_symmetric_mask():
    _, k = random_qk(40)
    _, keep = bspf_attention(k, k, 8**-0.5, 8, 0.5, smoothing_kernel("uniform"), symmetric=True)
    assert torch.equal(keep, keep.transpose(-1, -2))
    off_diagonal = to_blocks(keep, 8)[..., 0, 1, :, :]
    assert (off_diagonal.sum(dim=(-2, -1)) == 32).all()  # mirrored blocks keep the same count


def test_bspf_changes_no_token_count_and_no_mac_count(tiny, images):
    model = apply_method(copy.deepcopy(tiny), "bspf", rate=0.3)
    assert keep_counts(model) == [65] * 6
    assert count_macs(model).macs == count_macs(model, unpruned=True).macs
    assert torch.isfinite(run(model, images)).all()
    dense = apply_method(copy.deepcopy(tiny), "bspf", keep_ratio=1.0)  # keeping every entry is the dense model
    torch.testing.assert_close(
        run(dense, images), run(apply_method(copy.deepcopy(tiny), "none"), images), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"block_size": 1}, "--block-size must be an integer ≥ 2"),
        ({"keep_ratio": 0.0}, r"--keep-ratio must be in \(0, 1\]"),
        ({"block_size": 100}, "TopK K = 5000 > 3840"),
        ({"smoothing": "gauss"}, "--smoothing must be one of uniform, none"),
    ],
)
def test_bspf_rejects_bad_knobs(knobs, message):
    with pytest.raises(VitPruneError, match=message):
        get_method("bspf", **knobs)


def test_cli_lists_the_knobs_and_flops_states_bspf_count_is_unchanged():
    from vitprune_export.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["methods", "--json"])
    assert result.exit_code == 0
    knobs = {row["name"]: row["knobs"] for row in json.loads(result.stdout)}
    assert knobs["bspf"] == {"block_size": 16, "keep_ratio": 0.5, "smoothing": "uniform", "shared_qk": False}
    assert knobs["ppt"] == {"tau": 7e-5, "sort_pruned": False} and knobs["atpvit-topk"] == {"score": "cls-attn"}
    assert knobs["tome"] == {"sort_unmerged": False}
    result = runner.invoke(app, ["flops", "--method", "bspf", "--model", TINY, "--block-size", "8", "--shared-qk"])
    assert result.exit_code == 0, result.output
    assert "keeps every token" in result.output and "ratio 1.000" in result.output
    result = runner.invoke(app, ["flops", "--method", "bspf", "--model", TINY, "--block-size", "1"])
    assert result.exit_code == 2 and "--block-size must be an integer" in result.output


# ------------------------------------------------------------------------------------------ export
@pytest.mark.parametrize("method", SEED_METHODS)
def test_seed_method_exports_deit_tiny_with_parity_at_batch_1_and_3(method, export_cache):
    from vitprune_export.export.onnx import read_metadata

    model, result = export_cache("deit_tiny_patch16_224", method)  # rate 0.06, dynamic batch (shared with test_export)
    assert result.parity_batches == [1, 3]
    assert result.parity_max_abs_diff <= 1e-4
    assert result.keep_counts == keep_counts(model)
    assert result.keep_counts == ([197] * MATRIX_DEPTH if method == "bspf" else KEEP_COUNTS_197_AT_006)
    metadata = read_metadata(result.path)
    assert metadata["method"] == method
    assert metadata["method_options"] == get_method(method).knob_values()


@pytest.mark.parametrize("knobs", [{"shared_qk": True, "block_size": 8, "smoothing": "none"}, {"tau": 1e-5}])
def test_seed_method_knobs_export_and_reach_the_metadata(knobs, tmp_path):
    from vitprune_export import export_onnx
    from vitprune_export.export.onnx import read_metadata

    method = "bspf" if "shared_qk" in knobs else "ppt"
    model = apply_method(base_model(TINY, depth=2), method, rate=0.1, **knobs)
    result = export_onnx(model, tmp_path / "m.onnx", dynamic_batch=True, check=False)
    assert result.parity_max_abs_diff <= 1e-4 and result.parity_batches == [1, 3]
    assert {key: read_metadata(result.path)["method_options"][key] for key in knobs} == knobs


def test_bspf_graph_avoids_scatter_and_keeps_topk_within_tensorrt_limits(export_cache):
    import onnx

    _, result = export_cache("deit_tiny_patch16_224", "bspf")
    graph = onnx.load(str(result.path)).graph
    op_types = {node.op_type for node in graph.node}
    for function in onnx.load(str(result.path)).functions:
        op_types |= {node.op_type for node in function.node}
    assert not op_types & {"ScatterND", "ScatterElements", "Scatter"}
    initialisers = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    topk_k = [
        int(initialisers[node.input[1]].max())
        for node in graph.node
        if node.op_type == "TopK" and node.input[1] in initialisers
    ]
    assert topk_k and max(topk_k) == math.ceil(0.5 * 16**2) <= 3840
