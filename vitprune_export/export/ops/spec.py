"""The plugin contract, declared once: one :class:`OpSpec` per fused op.

A plugin node is a plain ONNX node: domain :data:`DOMAIN`, ``op_type`` = the
plugin name, attributes ``plugin_version`` and ``plugin_namespace`` (strings)
plus the op's own scalars. TensorRT finds the ``IPluginCreatorV3One`` of that
name, version and namespace; onnxruntime-extensions runs ``domain::op_type``.
Everything that writes, reads, runs or checks such a node takes its facts from
:data:`OPS`: the exporter (:mod:`.emit`, :mod:`.onnx_functions`), the ONNX
Runtime declarations (:mod:`.onnxruntime`), the reference and decomposition
tables (keyed by the op's ``step``), the rewrite, TensorRT's creator check, and
the tests that hold the C++ constants (``plugins/<op>/<op>Plugin.h``) and
``docs/plugins.md`` against it.

A version changes when what the node computes changes: ``VitPruneToMeMerge``
is at 2 since its A/B split alternates over all tokens with the prefix tokens
protected, as the official ToMe (``plugins/tomeMerge/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

DOMAIN = "vitprune"
DOMAIN_VERSION = 1
PLUGIN_ATTRIBUTES = ("plugin_version", "plugin_namespace")


@dataclass(frozen=True)
class OpSpec:
    """One fused op: its plugin name and version, the step it fuses, its tensors and scalar attributes."""

    name: str  # ONNX op_type = TensorRT plugin name
    version: str  # plugin_version
    step: str  # torch.ops.vitprune.<step>, reference.<step>, decompose.decompose_<step>, onnx_functions.<step>
    method: str  # the method whose step it fuses (export --plugin-nodes)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, type]  # name → int | float
    summary: str
    namespace: str = ""  # plugin_namespace

    @property
    def all_attributes(self) -> tuple[str, ...]:
        return PLUGIN_ATTRIBUTES + tuple(self.attributes)

    @property
    def plugin_attributes(self) -> dict[str, str]:
        """The two attributes every node of this op carries."""
        return {"plugin_version": self.version, "plugin_namespace": self.namespace}


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in (
        OpSpec(
            "VitPruneTopKSelect",
            "1",
            "topk_select",
            "topk",
            ("tokens", "scores"),
            ("kept_tokens",),
            {"num_prefix": int, "keep": int},
            "keep the `keep` best-scoring patch tokens after the prefix tokens",
        ),
        OpSpec(
            "VitPruneVPA",
            "1",
            "vpa",
            "topk-vpa",
            ("tokens", "scores", "keys", "sizes"),
            ("kept_tokens", "kept_sizes"),
            {"num_prefix": int, "keep": int, "tau": float},
            "top-k select; removed sizes spread to kept tokens by softmax(M / (rowsum(M)·tau))",
        ),
        OpSpec(
            "VitPruneToMeMerge",
            "2",
            "tome_merge",
            "tome",
            ("tokens", "keys", "sizes"),
            ("merged_tokens", "merged_sizes"),
            {"num_prefix": int, "merges": int},
            "bipartite soft matching on keys (A/B alternate over all tokens, prefix tokens protected, as the "
            "official ToMe), size-weighted average merge of `merges` pairs",
        ),
    )
}

#: methods whose pruning step ``export --plugin-nodes`` writes as one plugin node per layer
PLUGIN_OF_METHOD = {spec.method: spec.name for spec in OPS.values()}


def check_method_has_plugin(method_name: str) -> None:
    """A one-line error for ``--plugin-nodes`` with a method that has no plugin op."""
    from ...errors import VitPruneError

    if method_name not in PLUGIN_OF_METHOD and method_name != "none":
        raise VitPruneError(
            f"method {method_name!r} has no TensorRT plugin; --plugin-nodes works with {', '.join(PLUGIN_OF_METHOD)} "
            "(export without --plugin-nodes: its graph is standard ONNX ops)"
        )


__all__ = [
    "DOMAIN",
    "DOMAIN_VERSION",
    "OPS",
    "PLUGIN_ATTRIBUTES",
    "PLUGIN_OF_METHOD",
    "OpSpec",
    "check_method_has_plugin",
]
