"""Emission of the fused ops as custom ONNX nodes while exporting with ``--plugins``.

:func:`plugin_export_mode` is active while :func:`vitprune_export.export.onnx.export_onnx`
traces a model with ``plugins=True``: the methods' ``reduce`` then call the custom
ops of :mod:`.custom` instead of their unfused maths, and :func:`translation_table`
gives the dynamo exporter one ``@onnxscript.script`` function per op that writes a
single node in the ``vitprune`` domain, ``op_type`` = plugin name, with
``plugin_version``, ``plugin_namespace`` and the op's own scalar attributes — the
form TensorRT's ONNX parser maps to a registered ``IPluginCreatorV3One`` and
onnxruntime-extensions runs as ``vitprune::<op_type>``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def plugin_mode_active() -> bool:
    """True while a model is traced for a plugin export."""
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def plugin_export_mode() -> Iterator[None]:
    """Methods emit one fused custom op per pruning layer inside this block."""
    from . import custom  # noqa: F401  (registers torch.ops.vitprune.*)

    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    import torch

    from . import custom  # noqa: F401  (registers torch.ops.vitprune.*)
    from . import onnx_functions

    return {
        torch.ops.vitprune.topk_select.default: onnx_functions.topk_select,
        torch.ops.vitprune.vpa.default: onnx_functions.vpa,
        torch.ops.vitprune.tome_merge.default: onnx_functions.tome_merge,
    }
