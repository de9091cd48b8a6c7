"""A smaller set of real TensorRT for RTX builds on a 12-block model (DeiT-Tiny, 224 px, rate 0.06):
the fp16 cases that failed before the fp16 conversion kept one type per node (ToMe, BSPF), ToMe in
fp32, and Top-K·VPA's plugin graph rewritten to standard ops. Checks as in test_tensorrt_matrix.py."""

from __future__ import annotations

import pytest

from tests.tensorrt.trt_checks import REAL_TENSORRT, check_built_engine, standard_form
from vitprune_export.tensorrt.build import build_engine
from vitprune_export.tensorrt.profiles import load_profile

pytestmark = REAL_TENSORRT

DEIT = "deit_tiny_patch16_224"
DEIT_CASES = [
    ("tome", "plain", "fp32"),
    ("tome", "plain", "fp16"),
    ("bspf", "plain", "fp16"),
    ("topk-vpa", "standard", "fp16"),
]


@pytest.fixture(scope="module")
def profile():
    return load_profile("rtx-generic")


@pytest.fixture(scope="module")
def deit_graph(tmp_path_factory):
    """12-block DeiT-Tiny exports (the conftest cache holds 3-block ones), shared by the cases below."""
    from tests.helpers import base_model
    from vitprune_export import apply_method, export_onnx

    folder = tmp_path_factory.mktemp("deit12")
    cache = {}

    def get(method: str, form: str):
        key = (method, form)
        if key not in cache:
            plugins = form == "standard"
            model = apply_method(base_model(DEIT), method, rate=0.06)
            path = folder / f"{method}{'_plugins' if plugins else ''}.onnx"
            export_onnx(model, path, dynamic_batch=True, model_name=DEIT, check=False, plugins=plugins)
            cache[key] = standard_form(path, folder) if plugins else path
        return cache[key]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("method, form, precision", DEIT_CASES, ids=[f"{m}-{f}-{p}" for m, f, p in DEIT_CASES])
def test_a_12_block_deit_builds(method, form, precision, deit_graph, profile, tmp_path):
    onnx_path = deit_graph(method, form)
    result = build_engine(onnx_path, profile, output=tmp_path / f"{method}.engine", fp16=precision == "fp16")
    check_built_engine(result, onnx_path, precision, image=224, classes=1000, max_batch=profile.build.max_batch)
    assert len(result.description["onnx_metadata"]["keep_counts"]) == 12
