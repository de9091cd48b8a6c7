"""fp16 for TensorRT (vitprune_export.export.fp16): which nodes stay fp32, and a conversion that leaves no node
with mixed float input types (what strongly typed TensorRT rejects: "MatMul … must have same input types").
The real builds of every method in fp16 are in test_tensorrt_matrix.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vitprune_export.export.fp16 import FLOAT, FLOAT16, convert_to_fp16, fp32_nodes, mixed_type_nodes, tensor_types

TINY = "vitprune_tiny_patch4_32"


def _model(nodes, inputs, outputs, initialisers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initialisers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    return model


def _info(name, shape, kind=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, kind, shape)


def one_hot_merge_graph():
    """The shape of a decomposed merge: Equal → Cast(to=FLOAT) one-hot, MatMul with the tokens, divided by the
    one-hot's column sums; tokens come through a Linear first. onnxconverter-common left the Cast at FLOAT and
    the MatMul with Float and Half inputs."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "weight")
    arange = numpy_helper.from_array(np.arange(3, dtype=np.int64).reshape(1, 3), "arange")
    nodes = [
        helper.make_node("MatMul", ["x", "weight"], ["linear"], name="linear"),
        helper.make_node("Unsqueeze", ["index", "axis"], ["index2"], name="unsqueeze"),
        helper.make_node("Equal", ["index2", "arange"], ["mask"], name="equal"),
        helper.make_node("Cast", ["mask"], ["onehot"], name="cast_onehot", to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["onehot"], ["onehot_t"], name="transpose", perm=[1, 0]),
        helper.make_node("MatMul", ["onehot_t", "linear"], ["summed"], name="merge_sum"),
        helper.make_node("ReduceSum", ["onehot_t", "axis"], ["sizes"], name="sizes", keepdims=1),
        helper.make_node("Div", ["summed", "sizes"], ["merged"], name="merge_divide"),
        helper.make_node("LayerNormalization", ["merged", "gamma", "beta"], ["y"], name="norm", axis=-1),
    ]
    initialisers = [
        weight,
        arange,
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
        numpy_helper.from_array(np.ones(4, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(4, np.float32), "beta"),
    ]
    return _model(
        nodes, [_info("x", [5, 4]), _info("index", [5], TensorProto.INT64)], [_info("y", [3, 4])], initialisers
    )


def test_cast_to_float_feeding_a_matmul_is_converted_to_one_type():
    model = one_hot_merge_graph()
    converted, report = convert_to_fp16(model)
    assert mixed_type_nodes(converted) == []
    onnx.checker.check_model(converted)
    onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    types = tensor_types(converted)
    assert types["x"] == FLOAT and types["y"] == FLOAT  # the model's inputs and outputs stay fp32
    assert types["linear"] == FLOAT16 and types["weight"] == FLOAT16  # a Linear layer goes fp16
    by_name = {node.name: node for node in converted.graph.node}
    # the weighted average of merging (sum / sizes) and what it divides stay fp32 ...
    assert types[by_name["merge_divide"].input[0]] == FLOAT and types["merged"] == FLOAT
    assert types[by_name["merge_sum"].input[1]] == FLOAT  # a Cast of the fp16 Linear output
    assert by_name["cast_onehot"].attribute[0].i == FLOAT  # ... so the one-hot stays fp32 for it
    assert report.fp32_nodes >= 4 and report.casts_added >= 1


def test_conversion_matches_fp32_in_onnxruntime():
    import onnxruntime as ort

    model = one_hot_merge_graph()
    converted, _ = convert_to_fp16(model)
    feeds = {
        "x": np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32),
        "index": np.array([0, 2, 1, 2, 0], dtype=np.int64),
    }
    reference = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    result = ort.InferenceSession(converted.SerializeToString()).run(None, feeds)[0]
    assert result.dtype == np.float32
    assert np.abs(reference - result).max() < 5e-3


def test_a_weight_read_in_fp32_and_fp16_is_stored_twice_and_large_values_clamp():
    shared = numpy_helper.from_array(np.array([[1e5, 2.0], [3.0, 4.0]], np.float32), "shared")
    nodes = [
        helper.make_node("MatMul", ["x", "shared"], ["a"], name="linear"),
        helper.make_node("Softmax", ["shared"], ["s"], name="softmax", axis=-1),
        helper.make_node("Add", ["a", "s"], ["y"], name="add"),
    ]
    converted, report = convert_to_fp16(_model(nodes, [_info("x", [2, 2])], [_info("y", [2, 2])], [shared]))
    initialisers = {t.name: t for t in converted.graph.initializer}
    assert initialisers["shared"].data_type == FLOAT and initialisers["shared__fp16"].data_type == FLOAT16
    assert numpy_helper.to_array(initialisers["shared__fp16"]).max() == np.float16(65504)
    assert report.clamped_values == 1 and mixed_type_nodes(converted) == []


def test_plugin_nodes_stay_fp32_behind_casts():
    node = helper.make_node("VitPruneTopKSelect", ["t", "s"], ["kept"], name="plugin", domain="vitprune", keep=2)
    nodes = [
        helper.make_node("Relu", ["x"], ["t"], name="relu"),
        helper.make_node("Relu", ["x"], ["s0"], name="relu2"),
        helper.make_node("ReduceMean", ["s0", "axis"], ["s"], name="mean", keepdims=0),
        node,
        helper.make_node("Relu", ["kept"], ["y"], name="after"),
    ]
    model = _model(
        nodes,
        [_info("x", [1, 4, 3])],
        [_info("y", [1, 3, 3])],
        [numpy_helper.from_array(np.array([-1], np.int64), "axis")],
    )
    model.opset_import.append(helper.make_opsetid("vitprune", 1))
    model.graph.value_info.extend([_info("kept", [1, 3, 3])])
    converted, _ = convert_to_fp16(model, ["VitPruneTopKSelect"])
    plugin = next(n for n in converted.graph.node if n.name == "plugin")
    types = tensor_types(converted)
    assert [types[name] for name in plugin.input] == [FLOAT, FLOAT]
    assert types["t"] == FLOAT16 and types["kept"] == FLOAT and mixed_type_nodes(converted) == []


@pytest.fixture(scope="module")
def tome_onnx(export_cache):
    _, result = export_cache(TINY, "tome", rate=0.1)
    return result.path


def test_the_fragile_steps_of_a_tome_vit_stay_fp32_and_its_gemms_go_fp16(tome_onnx):
    """LayerNorm, Softmax, the bipartite similarities and their TopK, the key norms (square, sum, root), the
    merge division: fp32.
    Every Linear layer (a MatMul or Gemm with a weight) and the attention's QKᵀ / AV products: fp16."""
    model = onnx.load(str(tome_onnx))
    kept = set(fp32_nodes(model))
    by_type: dict[str, list] = {}
    for node in model.graph.node:
        by_type.setdefault(node.op_type, []).append(node)
    for op_type in ("LayerNormalization", "Softmax", "TopK", "Sqrt"):
        assert by_type[op_type] and all(node.name in kept for node in by_type[op_type]), op_type
    producer = {output: node for node in model.graph.node for output in node.output}
    for root in by_type["Sqrt"]:  # the square and its sum stay fp32 with the root: squares overflow fp16
        total = producer[root.input[0]]
        square = producer[total.input[0]]
        assert (total.op_type, square.op_type) == ("ReduceSum", "Mul") and {total.name, square.name} <= kept
    weights = {t.name for t in model.graph.initializer}
    linear = [n for n in by_type["MatMul"] + by_type.get("Gemm", []) if any(i in weights for i in n.input)]
    assert linear and not any(node.name in kept for node in linear)
    similarity = [n for n in by_type["MatMul"] if n.name in kept]
    assert len(similarity) == 6  # one bipartite similarity per block; attention's products stay fp16
    converted, report = convert_to_fp16(model)
    types = tensor_types(converted)
    assert mixed_type_nodes(converted) == []
    assert all(types[name] == FLOAT16 for node in linear for name in node.input if name in weights)
    assert report.initialisers_fp16 >= len(linear)
