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

from dataclasses import dataclass

DOMAIN = "vitprune"
DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
PLUGIN_ATTRIBUTES = ("plugin_version", "plugin_namespace")


@dataclass(frozen=True)
class OpSpec:
    """Inputs, outputs and scalar attributes (name → ``int`` | ``float``) of one op."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, type]
    summary: str

    @property
    def all_attributes(self) -> tuple[str, ...]:
        return PLUGIN_ATTRIBUTES + tuple(self.attributes)


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            "VitPruneTopKSelect", ("tokens", "scores"), ("kept_tokens",),
            {"num_prefix": int, "keep": int},
            "keep the `keep` best-scoring patch tokens after the prefix tokens",
        ),
        OpSpec(
            "VitPruneVPA", ("tokens", "scores", "keys", "sizes"), ("kept_tokens", "kept_sizes"),
            {"num_prefix": int, "keep": int, "tau": float},
            "top-k select; removed sizes spread to kept tokens by softmax(M / (rowsum(M)·tau))",
        ),
        OpSpec(
            "VitPruneToMeMerge", ("tokens", "keys", "sizes"), ("merged_tokens", "merged_sizes"),
            {"num_prefix": int, "merges": int},
            "bipartite soft matching on keys (A/B alternate over all tokens, prefix tokens protected, as the "
            "official ToMe), size-weighted average merge of `merges` pairs",
        ),
    )
}


#: methods whose pruning step ``export --plugins`` writes as one plugin node per layer
PLUGIN_OF_METHOD = {"topk": "VitPruneTopKSelect", "topk-vpa": "VitPruneVPA", "tome": "VitPruneToMeMerge"}


def check_method_has_plugin(method_name: str) -> None:
    """A one-line error for ``--plugins`` with a method that has no plugin op."""
    from ...errors import VitPruneError

    if method_name not in PLUGIN_OF_METHOD and method_name != "none":
        raise VitPruneError(
            f"method {method_name!r} has no TensorRT plugin; --plugins works with {', '.join(PLUGIN_OF_METHOD)} "
            "(export without --plugins: its graph is standard ONNX ops)"
        )


def is_vitprune_node(op_type: str) -> bool:
    return op_type in OPS


__all__ = ["DOMAIN", "DOMAIN_VERSION", "OPS", "OpSpec", "PLUGIN_OF_METHOD", "check_method_has_plugin", "PLUGIN_ATTRIBUTES", "PLUGIN_NAMESPACE", "PLUGIN_VERSION", "is_vitprune_node"]
