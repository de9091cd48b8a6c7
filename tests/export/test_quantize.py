"""INT8 Q/DQ quantization: where the Q/DQ pairs go, that they are symmetric and per channel, that the token
choice stays in float, what the record says, and what is refused."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from vitprune_export.errors import VitPruneError
from vitprune_export.export.fp16 import fp32_nodes
from vitprune_export.export.quantize import float_nodes, quantize_model, quantize_onnx, quantized_nodes
from vitprune_export.record import PruningRecord

TINY = "vitprune_tiny_patch4_32"
SELECTION = {"TopK", "ArgMax", "ArgMin", "Softmax", "LayerNormalization"}


def _batches(count=4, batch=8, seed=0):
    generator = np.random.default_rng(seed)
    return [generator.standard_normal((batch, 3, 32, 32)).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def tome_int8(export_cache, tmp_path_factory):
    _, exported = export_cache(TINY, "tome", rate=0.1)
    target = tmp_path_factory.mktemp("int8") / "tome_int8.onnx"
    report = quantize_onnx(exported.path, target, _batches(), data="random")
    return exported.path, target, report


def _initialiser(proto, name):
    found = [t for t in proto.graph.initializer if t.name == name]
    return numpy_helper.to_array(found[0]) if found else None


def test_zero_points_are_zero_and_weights_per_output_channel(tome_int8):
    _, target, _ = tome_int8
    proto = onnx.load(str(target))
    dequantize = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    assert dequantize
    for node in dequantize:
        zero_point = _initialiser(proto, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        assert zero_point is None or not np.any(zero_point), node.name
    per_channel = [n for n in dequantize if _initialiser(proto, n.input[0]) is not None]
    assert per_channel and all(_initialiser(proto, n.input[1]).size > 1 for n in per_channel)


def test_linear_layers_are_quantized_and_the_token_choice_stays_float(tome_int8):
    source, target, report = tome_int8
    fp32 = onnx.load(str(source))
    proto = onnx.load(str(target))
    dequantized = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    readers = {n.name for n in proto.graph.node if any(i in dequantized for i in n.input)}
    # qkv, proj, fc1, fc2 of each block, the head and the patch embedding
    assert len(quantized_nodes(proto)) == report.quantized_nodes >= 4 * 6 + 2
    kept = set(fp32_nodes(fp32))
    assert kept and not kept & readers, sorted(kept & readers)[:5]
    assert not {n.name for n in proto.graph.node if n.op_type in SELECTION} & readers
    # the attention products (two activations) are left float by default
    activation = [n for n in proto.graph.node if n.op_type == "MatMul" and n.name not in set(quantized_nodes(proto))]
    assert activation and report.float_nodes == len(float_nodes(fp32))


def test_the_record_carries_precision_and_calibration(tome_int8):
    source, target, report = tome_int8
    record, original = PruningRecord.read(target), PruningRecord.read(source)
    assert record.precision == "int8" and original.precision is None
    assert record.calibration == {"data": "random", "images": 32, "method": "minmax"}
    assert record.keep_counts == original.keep_counts and record.method == "tome"
    assert report.images == 32


def test_a_quantized_file_profiled_on_ort_cpu_says_int8_and_gets_its_own_name(tome_int8, tmp_path):
    from vitprune_export.measure.profile import profile
    from vitprune_export.measure.results import default_result_path, validate_result
    from vitprune_export.measure.runners import get_runner

    source, target, _ = tome_int8
    quantized = validate_result(
        profile(get_runner("ort-cpu", threads=1), target, warmup=0, iterations=2, progress=False)
    )
    plain = validate_result(profile(get_runner("ort-cpu", threads=1), source, warmup=0, iterations=2, progress=False))
    assert (quantized["precision"], plain["precision"]) == ("int8", "fp32")
    assert default_result_path(quantized, tmp_path).name.endswith("_b1_int8.json")
    assert default_result_path(quantized, tmp_path) != default_result_path(plain, tmp_path)


def test_quantized_logits_stay_close_to_fp32(tome_int8):
    import onnxruntime as ort

    source, target, _ = tome_int8
    images = _batches(1, 4, seed=1)[0]
    fp32 = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    name = fp32.get_inputs()[0].name
    expected, got = fp32.run(None, {name: images})[0], int8.run(None, {name: images})[0]
    assert not np.allclose(expected, got, atol=1e-6), "nothing was quantized"
    assert np.abs(expected - got).max() < 0.25 * np.abs(expected).max()


def test_a_static_batch_gets_full_batches_and_counts_only_real_images(export_cache):
    _, exported = export_cache(TINY, "topk", rate=0.1, dynamic_batch=False)
    proto = onnx.load(str(exported.path))
    _, images, _ = quantize_model(proto, [np.zeros((3, 3, 32, 32), np.float32)] * 2)
    assert images == 6


def test_refuses_a_quantized_file_plugin_nodes_and_a_taken_output(tome_int8, export_cache, tmp_path):
    source, target, _ = tome_int8
    with pytest.raises(VitPruneError, match="already quantized"):
        quantize_onnx(target, tmp_path / "again.onnx", _batches(1), data="random")
    _, plugins = export_cache(TINY, "topk", rate=0.1, dynamic_batch=False, plugins=True)
    with pytest.raises(VitPruneError, match="vitprune rewrite .* --to standard"):
        quantize_onnx(plugins.path, tmp_path / "p.onnx", _batches(1), data="random")
    with pytest.raises(VitPruneError, match="--force"):
        quantize_onnx(source, target, _batches(1), data="random")
    with pytest.raises(VitPruneError, match="did you mean 'entropy'"):
        quantize_onnx(source, tmp_path / "m.onnx", _batches(1), data="random", method="entrpy")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
