"""Shared fixtures: random-weight models and a per-session cache of ONNX exports.

Exports are the slow part of the suite (~15 s each for a 12-block ViT with the
dynamo exporter on 2 cores), so each (model, method, options) pair is exported
once per session and shared by the tests that read it.
"""

from __future__ import annotations

import copy
import os
import warnings

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
# under pytest-xdist every worker gets one core's worth of threads
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1)))

# The four model families the export tests cover (issue 2): plain ViT, small DeiT,
# LayerScale (DeiT-III) and register tokens (+ LayerScale: DINOv2 at 224 px).
MODEL_CASES = {
    "vit_small_patch16_224": {},
    "deit_tiny_patch16_224": {},
    "deit3_small_patch16_224": {},
    "vit_small_patch14_reg4_dinov2": {"img_size": 224},
}

_base_models: dict[tuple, torch.nn.Module] = {}


def base_model(name: str, **kwargs) -> torch.nn.Module:
    """A random-weight model (seeded), built once per session; returns a deep copy."""
    from vitprune_export.models import create_model

    key = (name, tuple(sorted(kwargs.items())))
    if key not in _base_models:
        torch.manual_seed(0)
        _base_models[key] = create_model(name, "random", **kwargs)
    return copy.deepcopy(_base_models[key])


@pytest.fixture(scope="session")
def export_cache(tmp_path_factory):
    """``export_cache(model_name, method, rate=…, dynamic_batch=True, plugins=False, **knobs)`` → (model, ExportResult)."""
    from vitprune_export import apply_method, export_onnx

    folder = tmp_path_factory.mktemp("exports")
    cache: dict[tuple, tuple] = {}

    def get(model_name: str, method: str, rate: float = 0.06, dynamic_batch: bool = True, plugins: bool = False, **knobs):
        key = (model_name, method, rate, dynamic_batch, plugins, tuple(sorted(knobs.items())))
        if key not in cache:
            model = apply_method(base_model(model_name, **MODEL_CASES.get(model_name, {})), method, rate=rate, **knobs)
            path = folder / f"{model_name}-{method}-{rate}-{len(cache)}.onnx"
            result = export_onnx(model, path, dynamic_batch=dynamic_batch, model_name=model_name, check=False, plugins=plugins)
            cache[key] = (model, result)
        return cache[key]

    return get


def has_cuda() -> bool:
    return torch.cuda.is_available()


requires_gpu = pytest.mark.skipif(not has_cuda(), reason="needs an NVIDIA GPU with a CUDA build of PyTorch")
