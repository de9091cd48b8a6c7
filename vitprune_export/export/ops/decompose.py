"""Standard-op decompositions of the fused ops (``vitprune rewrite --to standard``).

Each function replaces one plugin node by plain ONNX ops that ONNX Runtime and
TensorRT (10.3 and later) run without plugins, computing what :mod:`.reference`
computes: TopK (K ≤ 3840, TensorRT's limit), GatherElements, MatMul, Softmax,
ReduceL2/ReduceMax/ReduceSum, ArgMax, Equal + Cast one-hots. No ScatterND or
ScatterElements (TensorRT < 10.9 rejects them with a reduction); merges are
one-hot MatMuls, as in ``methods/functional.py``.

The builder works on an onnx-graphsurgeon graph (imported by the caller).
Token counts must be static (they are: export bakes the schedule in); the batch
axis may be dynamic.
"""

from __future__ import annotations

import numpy as np

from ...errors import VitPruneError
from ...pruning.methods.functional import bipartite_split
from .spec import OPS

TENSORRT_TOPK_LIMIT = 3840
_END = np.iinfo(np.int64).max


class GraphBuilder:
    """Appends nodes to a graphsurgeon graph under one name prefix."""

    def __init__(self, graph, prefix: str):
        import onnx_graphsurgeon as gs

        self.gs, self.graph, self.prefix, self.count = gs, graph, prefix, 0

    def _name(self, what: str) -> str:
        self.count += 1
        return f"{self.prefix}/{what}_{self.count}"

    def const(self, values, dtype=np.int64):
        return self.gs.Constant(self._name("const"), np.asarray(values, dtype=dtype))

    def op(self, op_type: str, inputs: list, attrs: dict | None = None, outputs: int = 1):
        results = [self.gs.Variable(self._name(f"{op_type}_out")) for _ in range(outputs)]
        node = self.gs.Node(op=op_type, name=self._name(op_type), attrs=attrs or {}, inputs=inputs, outputs=results)
        self.graph.nodes.append(node)
        return results[0] if outputs == 1 else results

    # -- small vocabulary ----------------------------------------------------------------
    def slice(self, x, start: int, end: int = _END, step: int = 1):
        """``x[:, start:end:step]`` along axis 1."""
        return self.op("Slice", [x, self.const([start]), self.const([end]), self.const([1]), self.const([step])])

    def unsqueeze(self, x, axis: int):
        return self.op("Unsqueeze", [x, self.const([axis])])

    def squeeze(self, x, axis: int):
        return self.op("Squeeze", [x, self.const([axis])])

    def transpose_last(self, x):
        return self.op("Transpose", [x], {"perm": [0, 2, 1]})

    def concat(self, *parts):
        return self.op("Concat", list(parts), {"axis": 1})

    def topk_indices(self, scores, k: int):
        """Indices of the ``k`` largest entries of the last axis, largest first."""
        if k > TENSORRT_TOPK_LIMIT:
            raise VitPruneError(
                f"a standard-op rewrite needs TopK with K={k} > {TENSORRT_TOPK_LIMIT}, TensorRT's limit; "
                "keep the plugin nodes (vitprune rewrite --to plugins) for this many tokens"
            )
        _, indices = self.op("TopK", [scores, self.const([k])], {"axis": -1, "largest": 1, "sorted": 1}, outputs=2)
        return indices

    def nan_as_infinity(self, scores):
        """NaN → +inf: the plugins' total order (ONNX's TopK keeps equal values in index order)."""
        infinity = self.const([np.inf], dtype=np.float32)
        return self.op("Where", [self.op("IsNaN", [scores]), infinity, scores])

    def sort_ascending(self, index, k: int):
        """Integer indices (…, k) in ascending order, sorted as float32 like ``functional.sort_indices``."""
        if k <= 1:
            return index
        as_float = self.op("Cast", [index], {"to": 1})
        values, _ = self.op("TopK", [as_float, self.const([k])], {"axis": -1, "largest": 0, "sorted": 1}, outputs=2)
        return self.op("Cast", [values], {"to": 7})

    def gather_rows(self, source, index, rank: int):
        """``source[b, index[b, i]]`` for a (B, K) index: rows of (B, N, C) or entries of (B, N)."""
        if rank == 2:
            return self.op("GatherElements", [source, index], {"axis": 1})
        shape = self.op("Concat", [self.op("Shape", [index]), self.op("Shape", [source], {"start": 2})], {"axis": 0})
        expanded = self.op("Expand", [self.unsqueeze(index, -1), shape])
        return self.op("GatherElements", [source, expanded], {"axis": 1})

    def l2_normalize(self, x, eps: float = 1e-6):
        """``x / max(‖x‖, eps)`` over the last axis."""
        norm = self.op("ReduceL2", [x, self.const([-1])], {"keepdims": 1})
        return self.op("Div", [x, self.op("Max", [norm, self.const(eps, np.float32)])])

    def cosine_similarity(self, a, b):
        """(B, R, D) × (B, K, D) → (B, R, K)."""
        return self.op("MatMul", [self.l2_normalize(a), self.transpose_last(self.l2_normalize(b))])


def decompose_topk_select(builder: GraphBuilder, tokens, scores, num_prefix: int, keep: int, tokens_in: int):
    """``VitPruneTopKSelect`` → Slice, TopK, GatherElements, Concat."""
    index = builder.topk_indices(builder.nan_as_infinity(builder.slice(scores, num_prefix)), keep)
    kept = builder.gather_rows(builder.slice(tokens, num_prefix), index, rank=3)
    return [builder.concat(builder.slice(tokens, 0, num_prefix), kept)]


def decompose_vpa(
    builder: GraphBuilder, tokens, scores, keys, sizes, num_prefix: int, keep: int, tau: float, tokens_in: int
):
    """``VitPruneVPA`` (VPA paper Eq. 4–5) → TopK over all patch tokens, then the size spread."""
    order = builder.topk_indices(builder.nan_as_infinity(builder.slice(scores, num_prefix)), tokens_in - num_prefix)
    kept, removed = builder.slice(order, 0, keep), builder.slice(order, keep)
    patch_keys, patch_sizes = builder.slice(keys, num_prefix), builder.slice(sizes, num_prefix)
    similarity = builder.cosine_similarity(
        builder.gather_rows(patch_keys, removed, rank=3), builder.gather_rows(patch_keys, kept, rank=3)
    )
    row_sum = builder.op("ReduceSum", [similarity, builder.const([-1])], {"keepdims": 1})
    row_sum = builder.op(
        "Where",
        [
            builder.op("GreaterOrEqual", [row_sum, builder.const(0.0, np.float32)]),
            builder.op("Max", [row_sum, builder.const(1e-6, np.float32)]),
            builder.op("Min", [row_sum, builder.const(-1e-6, np.float32)]),
        ],
    )
    temperature = builder.op("Mul", [row_sum, builder.const(tau, np.float32)])
    spread = builder.op("Softmax", [builder.op("Div", [similarity, temperature])], {"axis": -1})
    removed_sizes = builder.unsqueeze(builder.gather_rows(patch_sizes, removed, rank=2), 1)
    added = builder.squeeze(builder.op("MatMul", [removed_sizes, spread]), 1)
    new_sizes = builder.op("Add", [builder.gather_rows(patch_sizes, kept, rank=2), added])
    kept_tokens = builder.gather_rows(builder.slice(tokens, num_prefix), kept, rank=3)
    return [
        builder.concat(builder.slice(tokens, 0, num_prefix), kept_tokens),
        builder.concat(builder.slice(sizes, 0, num_prefix), new_sizes),
    ]


def decompose_tome_merge(builder: GraphBuilder, tokens, keys, sizes, num_prefix: int, merges: int, tokens_in: int):
    """``VitPruneToMeMerge`` (ToMe §3) → bipartite matching + one-hot MatMul merge.

    Sets A and B alternate over all tokens, prefix tokens included (``functional.bipartite_split``);
    only the patch tokens of A and B are matched, which protects the prefix tokens as the official
    ``−∞`` rows and columns do. Indices below count from the first patch token of A or of B.
    """
    protected_a, protected_b = bipartite_split(num_prefix)
    patch_a_start, patch_b_start = 2 * protected_a, 2 * protected_b + 1
    patch_a_count = (tokens_in + 1) // 2 - protected_a
    patch_b_count = tokens_in // 2 - protected_b
    metric = builder.l2_normalize(keys)
    patch_a = builder.slice(metric, patch_a_start, step=2)
    patch_b = builder.slice(metric, patch_b_start, step=2)
    similarity = builder.op("MatMul", [patch_a, builder.transpose_last(patch_b)])
    best_value = builder.op("ReduceMax", [similarity, builder.const([-1])], {"keepdims": 0})
    best_b = builder.op("ArgMax", [similarity], {"axis": -1, "keepdims": 0})
    order = builder.topk_indices(builder.nan_as_infinity(best_value), patch_a_count)
    merged = builder.slice(order, 0, merges)
    unmerged = builder.slice(order, merges)
    if num_prefix > 0:  # ascending position, as the official code sorts them when there is a class token
        unmerged = builder.sort_ascending(unmerged, patch_a_count - merges)
    destination = builder.op("GatherElements", [best_b, merged], {"axis": 1})

    weighted = builder.op("Mul", [tokens, builder.unsqueeze(sizes, -1)])
    a_tokens, b_tokens = builder.slice(weighted, patch_a_start, step=2), builder.slice(weighted, patch_b_start, step=2)
    a_sizes, b_sizes = builder.slice(sizes, patch_a_start, step=2), builder.slice(sizes, patch_b_start, step=2)
    one_hot = builder.op("Equal", [builder.unsqueeze(destination, -1), builder.const(np.arange(patch_b_count))])
    assignment_t = builder.transpose_last(builder.op("Cast", [one_hot], {"to": 1}))  # (B, |B|, r), float32
    b_tokens = builder.op(
        "Add", [b_tokens, builder.op("MatMul", [assignment_t, builder.gather_rows(a_tokens, merged, rank=3)])]
    )
    moved_sizes = builder.unsqueeze(builder.gather_rows(a_sizes, merged, rank=2), -1)
    b_sizes = builder.op("Add", [b_sizes, builder.squeeze(builder.op("MatMul", [assignment_t, moved_sizes]), -1)])
    merged_tokens = builder.concat(builder.gather_rows(a_tokens, unmerged, rank=3), b_tokens)
    merged_sizes = builder.concat(builder.gather_rows(a_sizes, unmerged, rank=2), b_sizes)
    averaged = builder.op("Div", [merged_tokens, builder.unsqueeze(merged_sizes, -1)])
    return [
        builder.concat(builder.slice(tokens, 0, num_prefix), averaged),
        builder.concat(builder.slice(sizes, 0, num_prefix), merged_sizes),
    ]


#: op name → decomposition, one per :data:`.spec.OPS` entry (``decompose_<step>``)
DECOMPOSITIONS = {spec.name: globals()[f"decompose_{spec.step}"] for spec in OPS.values()}
