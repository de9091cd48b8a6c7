"""Kept-token agreement: the selection nodes of each kind of method, the two shares on hand-made indices, a
file against itself, a file that chooses other tokens, and what `vitprune eval` of an INT8 file reports."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper
from typer.testing import CliRunner

from vitprune_export.accuracy.token_agreement import kept_share, kept_token_agreement, same_share, selection_nodes
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError

TINY = "vitprune_tiny_patch4_32"


def _batches(count=3, batch=2, seed=0):
    generator = np.random.default_rng(seed)
    return [(generator.standard_normal((batch, 3, 32, 32)).astype(np.float32), batch) for _ in range(count)]


def test_the_two_shares_on_hand_made_indices():
    assert kept_share(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[3, 2, 9], [6, 5, 4]])) == (2 / 3 + 1, 2)
    assert same_share(np.array([[0, 1, 2]]), np.array([[0, 2, 2]])) == (2.0, 3)


@pytest.mark.parametrize(
    ("method", "ops"), [("topk", ["TopK"] * 6), ("evit", ["TopK"] * 6), ("tome", ["TopK", "TopK"] * 6)]
)
def test_selection_nodes_are_the_choices(export_cache, method, ops):
    """Top-K chooses by TopK; EViT sorts and keeps the head (the Slice from 0 is the choice); ToMe chooses
    partners by a row maximum (TopK, k = 1) and the merged tokens as the head of its sorted edges; the tail
    slices are not choices."""
    _, exported = export_cache(TINY, method, rate=0.1)
    proto = onnx.load(str(exported.path))
    chosen = selection_nodes(proto)
    assert [node.op_type for node in chosen] == ops
    sliced = {node.output[0] for node in proto.graph.node if node.op_type == "Slice"}
    heads = [node for node in chosen if node.indices in sliced]
    assert len(heads) == (0 if method == "topk" else 6)


def test_a_file_agrees_with_itself_and_not_with_one_that_chooses_other_tokens(export_cache, tmp_path):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    same = kept_token_agreement(exported.path, exported.path, _batches())
    assert same["mean"] == 1.0 and len(same["per_selection"]) == 6
    proto = onnx.load(str(exported.path))
    first = next(node for node in proto.graph.node if node.op_type == "TopK")
    negated = first.input[0] + "_negated"  # the first block keeps its lowest-scored tokens instead
    position = list(proto.graph.node).index(first)
    proto.graph.node.insert(position, helper.make_node("Neg", [first.input[0]], [negated], name="flip_scores"))
    first.input[0] = negated
    flipped = tmp_path / "flipped.onnx"
    onnx.save(proto, str(flipped))
    other = kept_token_agreement(exported.path, flipped, _batches())
    kept, patches = exported.keep_counts[0] - 1, 64  # block 0 keeps 58 of the 64 patch tokens (plus the class)
    # the lowest-scored 58 share all but the 6 tokens either choice leaves out: (2·58 − 64)/58 of the kept set
    assert other["per_selection"][0]["agreement"] == pytest.approx((2 * kept - patches) / kept)
    assert other["mean"] < 1.0


def test_files_of_different_methods_are_not_compared(export_cache):
    topk, ppt = export_cache(TINY, "topk", rate=0.1)[1].path, export_cache(TINY, "ppt", rate=0.1)[1].path
    with pytest.raises(VitPruneError, match="not the same pruned model"):
        kept_token_agreement(topk, ppt, _batches(1))


def test_eval_of_an_int8_file_reports_the_kept_tokens_per_block(tmp_path):
    from vitprune_export import apply_method, export_onnx
    from vitprune_export.accuracy.finetune import checkpoint_dict, save_checkpoint
    from vitprune_export.export.quantize import quantize_onnx
    from vitprune_export.pruning.models import create_model

    checkpoint = save_checkpoint(tmp_path / "tiny.pt", checkpoint_dict(create_model(TINY, "random", seed=3), TINY))
    model = apply_method(create_model(TINY, weights=checkpoint), "topk", rate=0.1)
    source = export_onnx(model, tmp_path / "topk.onnx", batch=4, model_name=TINY, check=False).path
    quantized = tmp_path / "topk_int8.onnx"
    quantize_onnx(source, quantized, [batch for batch, _ in _batches(2, 4)], data="random")
    output = tmp_path / "accuracy.json"
    arguments = ["eval", str(quantized), "--checkpoint", str(checkpoint), "--data", "digits", "-o", str(output)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "kept tokens" in result.output
    data = json.loads(output.read_text())
    assert data["precision"] == "int8"
    tokens = data["accuracy"]["kept_token_agreement"]
    assert len(tokens["per_selection"]) == 6 and all(0 < entry["agreement"] <= 1 for entry in tokens["per_selection"])
    assert tokens["mean"] == pytest.approx(np.mean([entry["agreement"] for entry in tokens["per_selection"]]))
    fp32 = CliRunner().invoke(app, ["eval", str(source), "--checkpoint", str(checkpoint), "--json"])
    assert fp32.exit_code == 0, fp32.output
    assert json.loads(fp32.stdout)["accuracy"]["kept_token_agreement"] is None  # fp32 is the reference itself
