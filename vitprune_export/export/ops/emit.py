"""Emission of the fused ops as custom ONNX nodes while exporting with plugin nodes.

:func:`plugin_export_mode` is active while :func:`vitprune_export.export.onnx.export_onnx`
traces a model with ``plugins=True``: it installs the ``torch.library`` custom ops of
:mod:`.custom` as the methods' fused steps (:mod:`vitprune_export.pruning.methods.fused`),
so ``topk``, ``topk-vpa`` and ``tome`` call them instead of their unfused maths, and
:func:`translation_table` gives the dynamo exporter one ``@onnxscript.script`` function
per op that writes a single node in the ``vitprune`` domain, ``op_type`` = plugin name,
with ``plugin_version``, ``plugin_namespace`` and the op's own scalar attributes — the
form TensorRT's ONNX parser maps to a registered ``IPluginCreatorV3One`` and
onnxruntime-extensions runs as ``vitprune::<op_type>``. Both tables come from
:data:`.spec.OPS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ...pruning.methods.fused import fused_steps
from .spec import OPS


@contextlib.contextmanager
def plugin_export_mode() -> Iterator[None]:
    """Methods emit one fused custom op per pruning layer inside this block."""
    import torch

    from . import custom  # noqa: F401  (registers torch.ops.vitprune.*)

    with fused_steps({spec.step: getattr(torch.ops.vitprune, spec.step) for spec in OPS.values()}):
        yield


def translation_table() -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``."""
    import torch

    from . import (
        custom,  # noqa: F401  (registers torch.ops.vitprune.*)
        onnx_functions,
    )

    return {getattr(torch.ops.vitprune, spec.step).default: getattr(onnx_functions, spec.step) for spec in OPS.values()}
