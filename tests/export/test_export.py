"""Every method × four timm model families → static-shape ONNX that ONNX Runtime runs like PyTorch."""

import onnx
import pytest

from tests.helpers import MODEL_CASES
from vitprune_export import list_methods
from vitprune_export.errors import VitPruneError
from vitprune_export.export.onnx import export_onnx, read_metadata, token_dimensions

PARITY_BOUND = 1e-4


def symbolic_dims(path):
    """Every symbolic dimension name per value of the graph, after shape inference with data propagation.

    Data propagation folds the shape arithmetic the exporter writes (Shape → Concat → Reshape);
    what stays symbolic derives from the batch axis (``batch``, or batch × heads in SDPA's
    decomposition, which ONNX names ``unk__…``).
    """
    proto = onnx.shape_inference.infer_shapes(onnx.load(str(path)), data_prop=True)
    values = list(proto.graph.value_info) + list(proto.graph.input) + list(proto.graph.output)
    found = []
    for value in values:
        dims = value.type.tensor_type.shape.dim
        names = [d.dim_param for d in dims if not d.HasField("dim_value")]
        found.append((value.name, names))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("model_name", list(MODEL_CASES))
@pytest.mark.parametrize("method", list_methods())
def test_export_matches_pytorch_at_batch_1_and_3(export_cache, model_name, method):
    model, result = export_cache(model_name, method, rate=0.06, dynamic_batch=True)
    assert result.parity_batches == [1, 3]
    assert result.parity_max_abs_diff <= PARITY_BOUND, f"{method} on {model_name}: {result.parity_max_abs_diff}"
    # token dimensions are static: one symbol at most per tensor (the batch axis, alone or folded with the
    # heads), and every (B, N, C) token tensor has constant N and C
    for name, names in symbolic_dims(result.path):
        assert len(names) <= 1, f"{name} has symbolic dims {names}"
    token_tensors = token_dimensions(result.path)
    assert token_tensors and all(isinstance(n, int) and isinstance(c, int) for _, n, c in token_tensors)
    assert {n for _, n, _ in token_tensors} >= set(result.keep_counts)
    metadata = read_metadata(result.path)
    assert metadata["method"] == method and metadata["model"] == model_name
    assert metadata["keep_counts"] == result.keep_counts
    assert metadata["weights"] == "random"
    assert metadata["batch"] == "dynamic"
    assert {"torch", "timm", "onnx", "onnxruntime", "vitprune"} <= set(metadata["versions"])


def test_static_batch_export_has_no_symbolic_dims(tmp_path):
    from tests.helpers import base_model
    from vitprune_export import apply_method

    model = apply_method(base_model("vitprune_tiny_patch4_32"), "topk-vpa", rate=0.1)
    result = export_onnx(model, tmp_path / "tiny.onnx", batch=2)
    assert result.parity_batches == [2] and result.parity_max_abs_diff <= PARITY_BOUND
    assert all(not names for _, names in symbolic_dims(result.path))
    assert result.keep_counts == [59, 54, 49, 45, 41, 37]  # 65 tokens, rate 0.1


def test_failed_parity_check_leaves_no_file(tmp_path, monkeypatch):
    from tests.helpers import base_model
    from vitprune_export import apply_method
    from vitprune_export.export import onnx as export_module

    monkeypatch.setattr(export_module, "parity", lambda *args, **kwargs: 1.0)
    model = apply_method(base_model("vitprune_tiny_patch4_32"), "topk", rate=0.1)
    target = tmp_path / "out.onnx"
    with pytest.raises(VitPruneError, match="differs from PyTorch by 1"):
        export_onnx(model, target)
    assert list(tmp_path.iterdir()) == []


def test_opset_below_18_is_refused(tmp_path):
    from tests.helpers import base_model
    from vitprune_export import apply_method

    model = apply_method(base_model("vitprune_tiny_patch4_32"), "topk", rate=0.1)
    with pytest.raises(VitPruneError, match="lowest the dynamo exporter writes"):
        export_onnx(model, tmp_path / "x.onnx", opset=17)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_onnx_metadata_read_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    with pytest.raises(VitPruneError, match="not a readable ONNX file"):
        read_metadata(bad)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["topk-vpa", "etps", "tome"])
def test_pruning_steps_export_without_the_slow_reductions(export_cache, method):
    """Row norms are Mul + ReduceSum + Sqrt and row maxima one TopK (k = 1): ONNX Runtime's ReduceL2 over
    the token width and OpenVINO's ArgMax cost 2–4× as much (functional.row_norm, row_max)."""
    _, result = export_cache("vit_small_patch16_224", method, rate=0.06, dynamic_batch=True)
    op_types = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert not op_types & {"ReduceL2", "ArgMax", "ReduceMax"}, f"{method}: {sorted(op_types & {'ReduceL2', 'ArgMax'})}"
    assert "TopK" in op_types and "Sqrt" in op_types
