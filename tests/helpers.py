"""Shared by the tests: the model cases, random-weight models built once per session, the GPU skip mark."""

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

# The four model families the export tests cover: plain ViT, small DeiT,
# LayerScale (DeiT-III) and register tokens (+ LayerScale: DINOv2 at 224 px). Three blocks
# each: every block is patched the same way, and the dynamo exporter's time grows faster
# than the depth (deit_tiny + ppt: 52 s at 12 blocks, 9 s at 3). The full 12-block ViT-S/16
# is exported end to end by the README's main command in test_cli_export.
MATRIX_DEPTH = 3
MODEL_CASES = {
    "vit_small_patch16_224": {"depth": MATRIX_DEPTH},
    "deit_tiny_patch16_224": {"depth": MATRIX_DEPTH},
    "deit3_small_patch16_224": {"depth": MATRIX_DEPTH},
    "vit_small_patch14_reg4_dinov2": {"img_size": 224, "depth": MATRIX_DEPTH},
}
# tokens left after each of the MATRIX_DEPTH blocks at rate 0.06, from 197 (ViT-S/16, DeiT)
KEEP_COUNTS_197_AT_006 = [186, 175, 165]

_base_models: dict[tuple, torch.nn.Module] = {}


def trained_like(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give a timm-initialised model the two properties of trained weights that token selection relies on.

    timm starts LayerScale at 1e-5/1e-6 and the prefix tokens at std ~1e-6: the class token's query is
    then nearly constant and its attention nearly uniform, so the scores at the keep/drop boundary tie to
    ~1e-7 relative and float rounding alone decides which token survives (measured: DINOv2-reg4 and
    DeiT-III, logits ~0.003). Trained models have neither property. Here the prefix tokens get std 0.02
    and LayerScale γ = 1 (seeded), which separates the boundary scores by ≥ 5e-6 relative, far above the
    ~1e-7 differences between PyTorch and ONNX Runtime. Weights stay random otherwise.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in ("cls_token", "reg_token", "dist_token"):
            token = getattr(model, name, None)
            if token is not None:
                token.copy_(torch.randn(token.shape, generator=generator) * 0.02)
        for module in model.modules():
            if type(module).__name__ == "LayerScale":
                module.gamma.fill_(1.0)
    return model


def base_model(name: str, **kwargs) -> torch.nn.Module:
    """A random-weight model (seeded, :func:`trained_like`), built once per session; returns a deep copy."""
    from vitprune_export.pruning.models import create_model

    key = (name, tuple(sorted(kwargs.items())))
    if key not in _base_models:
        torch.manual_seed(0)
        _base_models[key] = trained_like(create_model(name, "random", **kwargs))
    return copy.deepcopy(_base_models[key])


def has_cuda() -> bool:
    return torch.cuda.is_available()


requires_gpu = pytest.mark.skipif(not has_cuda(), reason="needs an NVIDIA GPU with a CUDA build of PyTorch")
