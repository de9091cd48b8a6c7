"""vitprune: token-pruned Vision Transformers to static-shape ONNX, TensorRT and per-device latency.

Python API (the ``vitprune`` CLI is a thin layer over it)::

    import vitprune_export as vp
    model = vp.create_pruned("vit_small_patch16_224", "topk-vpa", rate=0.06)
    vp.keep_counts(model)          # [186, 175, ..., 98]
    result = vp.export_onnx(model, "engines/vit_s_topk_vpa.onnx")

Heavy dependencies (torch, timm, onnx) load on first use of a name below.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "create_pruned": "pruning.patch",
    "apply_method": "pruning.patch",
    "keep_counts": "pruning.patch",
    "pruning_info": "pruning.patch",
    "create_model": "pruning.models",
    "export_onnx": "export.onnx",
    "ExportResult": "export.onnx",
    "list_methods": "pruning.methods",
    "get_method": "pruning.methods",
    "register_method": "pruning.methods",
    "build_schedule": "pruning.schedule",
    "Schedule": "pruning.schedule",
    "count_macs": "pruning.flops",
    "VitPruneError": "errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'vitprune_export' has no attribute {name!r}")
