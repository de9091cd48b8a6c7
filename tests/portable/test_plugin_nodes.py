"""``portable.plugin_nodes`` reads an ONNX's plugin nodes without the ``onnx`` package: checked against onnx."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from vitprune_export.portable.plugin_nodes import BuildError, is_plugin_node, onnx_plugin_nodes


def _model(path):
    tokens = helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, 197, 384])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 197])
    kept = helper.make_tensor_value_info("kept", TensorProto.FLOAT, [1, 186, 384])
    nodes = [
        helper.make_node("Relu", ["tokens"], ["relu"], name="standard"),
        helper.make_node(
            "VitPruneTopKSelect",
            ["relu", "scores"],
            ["selected"],
            name="select_0",
            domain="trt.plugins",
            plugin_version="2",
            plugin_namespace="vitprune",
            keep=186,
        ),
        helper.make_node("Identity", ["selected"], ["kept"], name="custom", domain="com.example"),
    ]
    graph = helper.make_graph(nodes, "g", [tokens, scores], [kept])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("trt.plugins", 1)])
    onnx.save(model, path)
    return model


def test_plugin_nodes_are_those_onnx_sees_outside_the_standard_domains(tmp_path):
    model = _model(tmp_path / "m.onnx")
    expected = [(n.name, n.op_type, n.domain) for n in model.graph.node if is_plugin_node(n.op_type, n.domain)]
    found = onnx_plugin_nodes(tmp_path / "m.onnx")
    assert (
        [(n.name, n.op_type, n.domain) for n in found]
        == expected
        == [
            ("select_0", "VitPruneTopKSelect", "trt.plugins"),
            ("custom", "Identity", "com.example"),
        ]
    )
    assert (found[0].version, found[0].namespace) == ("2", "vitprune")
    assert (found[1].version, found[1].namespace) == ("1", "")  # the defaults when the attributes are absent


@pytest.mark.parametrize("content", [b"", b"\x3a\xff\xff\xff\xff\x0f", b"not an onnx file at all"])
def test_a_file_that_is_not_onnx_is_one_build_error(tmp_path, content):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    try:
        found = onnx_plugin_nodes(path)
    except BuildError as error:
        assert "is not a readable ONNX file" in str(error) and "re-export it" in str(error)
    else:  # bytes that happen to parse as a message hold no graph, so no plugin node
        assert found == []
