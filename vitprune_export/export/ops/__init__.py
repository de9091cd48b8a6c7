"""Fused token-reduction ops with TensorRT plugins: the contract shared by Python, ONNX and C++.

TensorRT runs the plain parts of a pruned ViT well; what it runs badly is the
data-dependent middle of a pruning step (sort, gather, matching, merge). The
paper behind Top-K+VPA (Ishibashi & Meng 2025, §4) reports that ToMe could not be
converted to TensorRT and that VPA's similarity step ate much of TensorRT's
speed-up. Each such step is one op here:

| op | what | paper |
| --- | --- | --- |
| ``VitPruneTopKSelect`` | scores → top-k patch tokens → gather (prefix kept) | VPA paper §3.1, Alg. 1 lines 9–12 |
| ``VitPruneVPA`` | top-k select + gather + VPA size update | VPA paper §3.2, Eq. 4–5 |
| ``VitPruneToMeMerge`` | bipartite soft matching + size-weighted merge, sizes out | ToMe (ICLR'23) §3 |

Each op is declared once, in :mod:`.spec` (name, version, inputs, outputs,
attributes): the emitter, the ONNX functions, the ONNX Runtime declarations, the
references, the decompositions, the rewrite and TensorRT's creator check read it,
and tests hold the C++ plugins' constants and ``docs/plugins.md`` against it.
Every op has: a PyTorch reference (:mod:`.reference`, the truth), a
``torch.library`` custom op (:mod:`.custom`) emitted by the exporter as one custom
node per layer (:mod:`.emit`, :mod:`.onnx_functions`), an ONNX Runtime execution for
parity on the CPU (:mod:`.onnxruntime`), a standard-op decomposition
(:mod:`.decompose`, used by ``vitprune rewrite``), and a CUDA kernel + ``IPluginV3`` in
``plugins/<op>/`` (built by :mod:`.plugin_library`; kernels callable from PyTorch
through :mod:`.kernels`). See ``docs/plugins.md``.

One node form serves both runtimes: domain ``vitprune``, ``op_type`` = plugin name,
attributes ``plugin_version``, ``plugin_namespace`` and the op's own scalars.
TensorRT's ONNX parser dispatches on ``op_type`` alone (the fallback plugin
importer), onnxruntime-extensions on ``domain::op_type``.
"""

from __future__ import annotations

from .spec import DOMAIN, DOMAIN_VERSION, OPS, PLUGIN_ATTRIBUTES, PLUGIN_OF_METHOD, OpSpec, check_method_has_plugin

__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "OPS",
    "PLUGIN_ATTRIBUTES",
    "PLUGIN_OF_METHOD",
    "OpSpec",
    "check_method_has_plugin",
]
