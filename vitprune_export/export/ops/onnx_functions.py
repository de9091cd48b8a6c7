"""``@onnxscript.script`` functions writing one ``vitprune`` node per fused op.

Imported only while exporting with ``--plugins`` (onnxscript is heavy). No
``from __future__ import annotations`` here: onnxscript reads the type
annotations as objects.
"""

import onnxscript
from onnxscript import FLOAT

from . import DOMAIN, DOMAIN_VERSION, PLUGIN_NAMESPACE, PLUGIN_VERSION

vitprune = onnxscript.values.Opset(DOMAIN, DOMAIN_VERSION)


@onnxscript.script(vitprune)
def topk_select(tokens: FLOAT, scores: FLOAT, num_prefix: int, keep: int) -> FLOAT:
    return vitprune.VitPruneTopKSelect(
        tokens, scores, num_prefix=num_prefix, keep=keep,
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE,
    )


@onnxscript.script(vitprune)
def vpa(
    tokens: FLOAT, scores: FLOAT, keys: FLOAT, sizes: FLOAT, num_prefix: int, keep: int, tau: float
) -> tuple[FLOAT, FLOAT]:
    kept_tokens, kept_sizes = vitprune.VitPruneVPA(
        tokens, scores, keys, sizes, num_prefix=num_prefix, keep=keep, tau=tau,
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE,
    )
    return kept_tokens, kept_sizes


@onnxscript.script(vitprune)
def tome_merge(tokens: FLOAT, keys: FLOAT, sizes: FLOAT, num_prefix: int, merges: int) -> tuple[FLOAT, FLOAT]:
    merged_tokens, merged_sizes = vitprune.VitPruneToMeMerge(
        tokens, keys, sizes, num_prefix=num_prefix, merges=merges,
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE,
    )
    return merged_tokens, merged_sizes
