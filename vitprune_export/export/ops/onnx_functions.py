"""``@onnxscript.script`` functions writing one ``vitprune`` node per fused op, as :mod:`.spec` declares it.

Imported only while exporting with plugin nodes (onnxscript is heavy). No
``from __future__ import annotations`` here: onnxscript reads the type
annotations as objects. Each function is named after its op's ``step``; its
node's name, inputs, outputs and attributes are checked against the spec by
``tests/export/test_ops.py``.
"""

import onnxscript
from onnxscript import FLOAT

from .spec import DOMAIN, DOMAIN_VERSION, OPS

vitprune = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)

TOPK_SELECT_VERSION = OPS["VitPruneTopKSelect"].version
TOPK_SELECT_NAMESPACE = OPS["VitPruneTopKSelect"].namespace
VPA_VERSION = OPS["VitPruneVPA"].version
VPA_NAMESPACE = OPS["VitPruneVPA"].namespace
TOME_MERGE_VERSION = OPS["VitPruneToMeMerge"].version
TOME_MERGE_NAMESPACE = OPS["VitPruneToMeMerge"].namespace


@onnxscript.script(vitprune)
def topk_select(tokens: FLOAT, scores: FLOAT, num_prefix: int, keep: int) -> FLOAT:
    kept_tokens = vitprune.VitPruneTopKSelect(
        tokens,
        scores,
        num_prefix=num_prefix,
        keep=keep,
        plugin_version=TOPK_SELECT_VERSION,
        plugin_namespace=TOPK_SELECT_NAMESPACE,
    )
    return kept_tokens


@onnxscript.script(vitprune)
def vpa(
    tokens: FLOAT, scores: FLOAT, keys: FLOAT, sizes: FLOAT, num_prefix: int, keep: int, tau: float
) -> tuple[FLOAT, FLOAT]:
    kept_tokens, kept_sizes = vitprune.VitPruneVPA(
        tokens,
        scores,
        keys,
        sizes,
        num_prefix=num_prefix,
        keep=keep,
        tau=tau,
        plugin_version=VPA_VERSION,
        plugin_namespace=VPA_NAMESPACE,
    )
    return kept_tokens, kept_sizes


@onnxscript.script(vitprune)
def tome_merge(tokens: FLOAT, keys: FLOAT, sizes: FLOAT, num_prefix: int, merges: int) -> tuple[FLOAT, FLOAT]:
    merged_tokens, merged_sizes = vitprune.VitPruneToMeMerge(
        tokens,
        keys,
        sizes,
        num_prefix=num_prefix,
        merges=merges,
        plugin_version=TOME_MERGE_VERSION,
        plugin_namespace=TOME_MERGE_NAMESPACE,
    )
    return merged_tokens, merged_sizes
