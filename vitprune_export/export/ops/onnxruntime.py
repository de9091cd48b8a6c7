"""ONNX Runtime execution of the fused-op nodes, for parity on the CPU.

onnxruntime-extensions runs Python functions as custom ops (``onnx_op``): each
node ``vitprune::VitPrune…`` calls the PyTorch reference of :mod:`.reference`.
Its limits: ``op_type`` written ``domain::Name``, scalar
attributes only, every declared attribute present on the node (the plugin form
carries them all), IR version ≤ 10. It is slow (Python, values copied as lists):
for parity, not latency.
"""

from __future__ import annotations

from ...errors import MissingDependencyError
from .spec import DOMAIN, OPS, PLUGIN_ATTRIBUTES

_registered = False


def _declare_ops() -> None:
    global _registered
    if _registered:
        return
    import numpy as np
    import torch
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    from .reference import REFERENCES

    attribute_types = {int: PyCustomOpDef.dt_int64, float: PyCustomOpDef.dt_float}

    def make(spec):
        function = REFERENCES[spec.name]
        attributes = dict.fromkeys(PLUGIN_ATTRIBUTES, PyCustomOpDef.dt_string)
        attributes.update({name: attribute_types[kind] for name, kind in spec.attributes.items()})

        def run(*inputs, **attrs):
            tensors = [torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for value in inputs]
            scalars = {name: kind(attrs[name]) for name, kind in spec.attributes.items()}
            with torch.no_grad():
                result = function(*tensors, **scalars)
            if isinstance(result, tuple):
                return tuple(value.numpy() for value in result)
            return result.numpy()

        onnx_op(
            op_type=f"{DOMAIN}::{spec.name}",
            inputs=[PyCustomOpDef.dt_float] * len(spec.inputs),
            outputs=[PyCustomOpDef.dt_float] * len(spec.outputs),
            attrs=attributes,
        )(run)

    for spec in OPS.values():
        make(spec)
    _registered = True


def register_custom_ops(session_options) -> None:
    """Make ``session_options`` run ``vitprune::VitPrune…`` nodes (onnxruntime-extensions)."""
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError:
        raise MissingDependencyError(
            "running vitprune plugin nodes in ONNX Runtime needs onnxruntime-extensions; "
            "pip install onnxruntime-extensions (or rewrite the file with 'vitprune rewrite --to standard')"
        ) from None
    _declare_ops()
    session_options.register_custom_ops_library(get_library_path())
