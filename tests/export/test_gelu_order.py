"""Exported GELUs are in the order ONNX Runtime fuses into one ``Gelu`` kernel, with the same values."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitprune_export.export.gelu_order import order_gelu_for_fusion


def exporter_gelu(divisor: float = math.sqrt(2), half: float = 0.5) -> onnx.ModelProto:
    """``y = x · (half · (1 + erf(x / divisor)))`` after a linear layer, as the dynamo exporter writes GELU."""
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(np.array(divisor, np.float32), "divisor"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(half, np.float32), "half"),
        numpy_helper.from_array(rng.standard_normal((8, 16)).astype(np.float32), "weight"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "weight"], ["h"]),
        helper.make_node("Div", ["h", "divisor"], ["scaled"]),
        helper.make_node("Erf", ["scaled"], ["erf"]),
        helper.make_node("Add", ["erf", "one"], ["plus_one"]),
        helper.make_node("Mul", ["half", "plus_one"], ["halved"]),
        helper.make_node("Mul", ["h", "halved"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, 16])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def run_optimised(proto: onnx.ModelProto, tmp_path, x: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Output under ONNX Runtime's ``extended`` optimisation, and the op types it kept."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    output = session.run(None, {"x": x})[0]
    return output, [node.op_type for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]


def test_exporter_order_becomes_one_gelu_kernel_with_the_same_values(tmp_path):
    x = np.random.default_rng(1).standard_normal((2, 5, 8)).astype(np.float32)
    before, before_ops = run_optimised(exporter_gelu(), tmp_path, x)
    assert "Erf" in before_ops and "Gelu" not in before_ops  # ONNX Runtime does not fuse the exporter's order

    proto = exporter_gelu()
    assert order_gelu_for_fusion(proto) == 1
    onnx.checker.check_model(proto)
    after, after_ops = run_optimised(proto, tmp_path, x)
    assert "Gelu" in after_ops and "Erf" not in after_ops
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("divisor", "half"), [(2.0, 0.5), (math.sqrt(2), 0.25)])
def test_other_expressions_are_left_alone(divisor, half):
    proto = exporter_gelu(divisor, half)
    original = proto.SerializeToString()
    assert order_gelu_for_fusion(proto) == 0
    assert proto.SerializeToString() == original


def test_every_block_of_an_exported_vit_runs_one_gelu_kernel_in_onnx_runtime(export_cache, tmp_path):
    import onnxruntime as ort

    model, result = export_cache("vitprune_tiny_patch4_32", "topk", rate=0.1, dynamic_batch=False)
    assert order_gelu_for_fusion(onnx.load(str(result.path))) == 0  # already in the fusable order
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    ort.InferenceSession(str(result.path), options, providers=["CPUExecutionProvider"])
    op_types = [node.op_type for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node]
    assert op_types.count("Gelu") == len(model.blocks)
    assert "Erf" not in op_types
