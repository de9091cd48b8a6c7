"""The one place that makes ``import timm`` work with a CPU build of torch.

timm imports torchvision. PyPI's torchvision 0.28.0 (the release that pairs with
torch 2.13) is a CUDA build: next to a CPU torch its compiled ops do not load,
and ``import torchvision`` then fails in ``_meta_registrations.py`` with
``RuntimeError: operator torchvision::nms does not exist`` because that file
registers fake kernels for ``nms``/``qnms`` unconditionally. The ViT path of
timm uses none of torchvision's compiled ops (only pure-Python transforms).

``import_timm`` tries the normal import first; only when it fails that way does
it declare the two missing operator schemas (never their kernels: calling them
still raises) and import again. With matching CPU or CUDA builds nothing is
touched.
"""

from __future__ import annotations

import contextlib
import sys

_MISSING_TORCHVISION_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_shim_library = None  # keeps the torch.library.Library alive


def _forget_partial_import(prefix: str) -> None:
    for name in [n for n in sys.modules if n == prefix or n.startswith(prefix + ".")]:
        del sys.modules[name]


def _declare_missing_torchvision_ops() -> None:
    global _shim_library
    import torch

    if _shim_library is not None:
        return
    _shim_library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _MISSING_TORCHVISION_OPS.values():
        with contextlib.suppress(RuntimeError):  # already declared (the extension loaded that one)
            _shim_library.define(schema)


def import_torchvision():
    """Import torchvision, declaring its two missing op schemas when its C extension cannot load."""
    try:
        import torchvision
    except RuntimeError as error:
        if "torchvision::" not in str(error):
            raise
        _forget_partial_import("torchvision")
        _declare_missing_torchvision_ops()
        import torchvision
    return torchvision


def import_timm():
    """Return the ``timm`` module, importing torchvision safely first."""
    if "timm" in sys.modules:
        return sys.modules["timm"]
    import_torchvision()
    import timm

    return timm
