"""Every method builds with a real TensorRT builder, in fp32 and fp16, from its plain graph and (for the
methods with plugins) from its plugin graph rewritten to standard ops; and its INT8 Q/DQ file (vitprune
quantize) builds too, with FP8 for an SM89 target.

TensorRT for RTX (``pip install tensorrt-rtx``, in the dev install) builds ahead of time on a CPU with no
GPU, strongly typed: fp16 comes from the ONNX's own types (vitprune_export.export.fp16), so these builds check
that no node is left with mixed float inputs. The engine cannot be deserialised without a GPU; what the
builder saw is checked instead — the parsed network's inputs and outputs (dynamic batch), the shape
profile, the precision and the pruning record in the engine's JSON. The full matrix runs on the tiny
ViT (6 blocks); a smaller set on the 12-block DeiT-Tiny is in test_tensorrt_deit.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.tensorrt.trt_checks import REAL_TENSORRT, check_built_engine, standard_form
from vitprune_export import list_methods
from vitprune_export.export.fp16 import convert_onnx_to_fp16
from vitprune_export.export.onnx import read_metadata
from vitprune_export.export.ops import PLUGIN_OF_METHOD
from vitprune_export.tensorrt.build import build_engine
from vitprune_export.tensorrt.profiles import load_profile

pytestmark = REAL_TENSORRT

TINY = "vitprune_tiny_patch4_32"
PRECISIONS = ("fp32", "fp16")
CASES = [(method, "plain", precision) for method in list_methods() for precision in PRECISIONS]
CASES += [(method, "standard", precision) for method in sorted(PLUGIN_OF_METHOD) for precision in PRECISIONS]


@pytest.fixture(scope="module")
def profile():
    """rtx-generic: TensorRT for RTX, portable targets, dynamic batch 1/1/32."""
    return load_profile("rtx-generic")


@pytest.fixture(scope="module")
def tiny_graph(export_cache, tmp_path_factory):
    folder = tmp_path_factory.mktemp("standard")

    def get(method: str, form: str):
        if form == "plain":
            return export_cache(TINY, method, rate=0.1)[1].path
        return standard_form(export_cache(TINY, method, rate=0.1, plugins=True)[1].path, folder)

    return get


@pytest.mark.parametrize("method, form, precision", CASES, ids=[f"{m}-{f}-{p}" for m, f, p in CASES])
def test_every_method_builds_on_the_tiny_vit(method, form, precision, tiny_graph, profile, tmp_path):
    onnx_path = tiny_graph(method, form)
    if form == "standard":
        assert read_metadata(onnx_path)["rewrite"] == "standard"
    result = build_engine(onnx_path, profile, output=tmp_path / f"{method}.engine", fp16=precision == "fp16")
    check_built_engine(result, onnx_path, precision, image=32, classes=10, max_batch=profile.build.max_batch)


@pytest.mark.parametrize("method", list_methods())
def test_fp16_graph_agrees_with_fp32_in_onnxruntime(method, tiny_graph, tmp_path):
    """The graph TensorRT builds in fp16, run in ONNX Runtime on the CPU: the logits stay within 10 % of the
    largest fp32 logit (measured for every method: docs/engines.md, benchmarks/fp16_agreement.py)."""
    import onnxruntime as ort

    source = tiny_graph(method, "plain")
    converted = tmp_path / "fp16.onnx"
    convert_onnx_to_fp16(source, converted, [])
    images = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    reference = ort.InferenceSession(str(source)).run(None, {"images": images})[0]
    result = ort.InferenceSession(str(converted)).run(None, {"images": images})[0]
    assert result.dtype == np.float32 and result.shape == reference.shape
    assert np.abs(result - reference).max() <= 0.1 * np.abs(reference).max()


def _random_batches(count: int = 2, batch: int = 8):
    generator = np.random.default_rng(0)
    return [generator.standard_normal((batch, 3, 32, 32)).astype(np.float32) for _ in range(count)]


@pytest.fixture(scope="module")
def quantized_graph(tiny_graph, tmp_path_factory):
    from vitprune_export.export.quantize import quantize_onnx

    folder = tmp_path_factory.mktemp("quantized")

    def get(method: str, precision: str):
        target = folder / f"{method}_{precision}.onnx"
        if not target.exists():
            quantize_onnx(tiny_graph(method, "plain"), target, _random_batches(), data="random", precision=precision)
        return target

    return get


@pytest.mark.parametrize("method", list_methods())
def test_every_method_builds_from_its_int8_qdq_file(method, quantized_graph, profile, tmp_path):
    """TensorRT's parser takes the Q/DQ graph (symmetric, float biases) and the strongly typed build keeps its
    types: the engine says int8, whatever float precision the profile asks for."""
    onnx_path = quantized_graph(method, "int8")
    result = build_engine(onnx_path, profile, output=tmp_path / f"{method}.engine")
    check_built_engine(result, onnx_path, "int8", image=32, classes=10, max_batch=profile.build.max_batch)
    assert "explicit Q/DQ" in result.description["precision_source"]
    assert result.description["onnx_metadata"]["precision"] == "int8"


@pytest.mark.parametrize("method", ["tome"])
def test_fp8_builds_for_sm89_and_is_refused_for_older_targets(method, quantized_graph, tmp_path):
    from vitprune_export.errors import VitPruneError
    from vitprune_export.tensorrt.profiles import profile_from_dict

    onnx_path = quantized_graph(method, "fp8")
    ada = profile_from_dict(
        {"device": {"arch": "sm_89"}, "build": {"backend": "trt-rtx", "compute_capabilities": ["sm_89"]}}, "ada"
    )
    result = build_engine(onnx_path, ada, output=tmp_path / "fp8.engine")
    check_built_engine(result, onnx_path, "fp8", image=32, classes=10, max_batch=ada.build.max_batch)
    with pytest.raises(VitPruneError, match="targets sm_80, sm_86: no FP8 there"):
        build_engine(onnx_path, load_profile("rtx-generic"), output=tmp_path / "refused.engine")
    assert not (tmp_path / "refused.engine").exists()
