"""Kept-token agreement: does a quantized (or fp16) file keep the tokens its fp32 model keeps?

Top-1 agreement says whether the answer changed; it does not say whether the token choice did. A
pruned ViT decides which tokens stay by ``TopK`` over its scores (Top-K, EViT, eTPS, ATPViT, PPT …)
and whom a token merges with by a row maximum over similarities (ToMe's bipartite matching, eTPS's
nearest kept token): a ``TopK`` with k = 1 in vitprune's exports, an ``ArgMax`` in others. Run both files in ONNX Runtime on the same images, with those nodes' index
outputs exposed, and compare, per selection node (one or more per block):

* ``TopK`` (that selects: k below the axis length): the share of the indices fp32 keeps that the
  other file keeps too — the kept set, order ignored; a ``TopK`` that sorts the whole axis and whose
  first entries a ``Slice`` takes (EViT and Top-K·VPA keep the head and fuse or spread the tail, ToMe
  merges the head of its sorted edges) is compared on that head the same way;
* ``ArgMax``: the share of identical choices (ToMe: the same merge partner per token). A ``TopK``
  with k = 1 is the same measure: each row's kept set is its one choice.

A ``TopK`` whose k is the whole axis and whose head no ``Slice`` takes is a sort, not a choice, and
is left out. Nodes are matched by
name (an export and the file quantized from it share their names), else in graph order; either way
both files must have the same selection nodes (count and op types), else they are not one model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VitPruneError

SELECTION_OPS = ("TopK", "ArgMax")


@dataclass(frozen=True)
class SelectionNode:
    """One node that chooses tokens: its name, op type and the output holding the chosen indices."""

    name: str
    op_type: str
    indices: str


def _constant_ints(proto) -> dict[str, list[int]]:
    """Integer constants of the graph (initialisers and Constant nodes) by output name."""
    from onnx import numpy_helper

    values = {
        t.name: numpy_helper.to_array(t).reshape(-1).tolist()
        for t in proto.graph.initializer
        if list(t.dims) in ([], [1])
    }
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            array = numpy_helper.to_array(node.attribute[0].t)
            if array.size == 1:
                values[node.output[0]] = array.reshape(-1).tolist()
    return values


def _static_dims(proto) -> dict[str, list[int | None]]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)  # k from Shape/Gather too
    except Exception:  # shape inference is a help here, not a requirement
        inferred = proto
    graph = inferred.graph
    dims = {}
    for value in [*graph.value_info, *graph.input, *graph.output]:
        shape = value.type.tensor_type.shape
        dims[value.name] = [dim.dim_value if dim.HasField("dim_value") else None for dim in shape.dim]
    return dims


def _axis_length(shape: list[int | None] | None, axis: int) -> int | None:
    return shape[axis] if shape and -len(shape) <= axis < len(shape) and shape[axis] else None


def selection_nodes(proto) -> list[SelectionNode]:
    """The nodes of ``proto`` that choose tokens, in graph order (full sorts left out)."""
    constants = _constant_ints(proto)
    dims = _static_dims(proto)
    consumers: dict[str, list] = {}
    for node in proto.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    for index, node in enumerate(proto.graph.node):
        if node.op_type not in SELECTION_OPS:
            continue
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type == "ArgMax":
            found.append(SelectionNode(name, node.op_type, node.output[0]))
            continue
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), -1)
        k = constants.get(node.input[1], [None])[0] if len(node.input) > 1 else None
        length, chosen = (_axis_length(dims.get(name), axis) for name in (node.input[0], node.output[1]))
        k = k if k is not None else chosen
        if k is not None and length is not None and k >= length:
            head = _leading_slice(node.output[1], consumers, constants)
            if head is not None:  # a sort whose first entries are taken: the kept (or merged) set
                found.append(SelectionNode(name, node.op_type, head))
            continue  # else a sort of the whole axis chooses nothing
        found.append(SelectionNode(name, node.op_type, node.output[1]))
    return found


#: ops a sort's indices pass through unchanged as a set (an offset past the prefix tokens, a cast, a reshape)
INDEX_PRESERVING = ("Add", "Sub", "Cast", "Unsqueeze", "Reshape", "Identity")


def _leading_slice(indices: str, consumers: dict[str, list], constants: dict[str, list[int]]) -> str | None:
    """The output of a ``Slice`` from position 0 of a sort's indices (through offsets and casts), or None."""
    frontier, seen = [indices], set()
    for _ in range(3):
        following = []
        for tensor in frontier:
            for node in consumers.get(tensor, []):
                if node.op_type == "Slice" and node.input[0] == tensor:
                    starts = constants.get(node.input[1]) if len(node.input) > 1 else None
                    if starts == [0]:
                        return node.output[0]
                elif node.op_type in INDEX_PRESERVING and node.output[0] not in seen:
                    seen.add(node.output[0])
                    following.append(node.output[0])
        frontier = following
    return None


def match_selections(reference, candidate) -> list[tuple[SelectionNode, SelectionNode]]:
    """Pairs of selection nodes, by name, else in order; a one-line error when the files differ."""
    ours, theirs = selection_nodes(reference), selection_nodes(candidate)
    by_name = {node.name: node for node in theirs}
    if len(ours) == len(theirs) and all(node.name in by_name for node in ours):
        return [(node, by_name[node.name]) for node in ours]
    if len(ours) == len(theirs) and all(a.op_type == b.op_type for a, b in zip(ours, theirs)):
        return list(zip(ours, theirs))
    raise VitPruneError(
        f"the two files choose tokens in different places ({len(ours)} vs {len(theirs)} TopK/ArgMax nodes); "
        "they are not the same pruned model"
    )


def _session_with_outputs(proto, names: list[str], custom_ops: bool):
    """An ONNX Runtime session of ``proto`` that also returns the tensors ``names``."""
    import onnx
    import onnxruntime as ort

    copy = onnx.ModelProto.FromString(proto.SerializeToString())
    present = {output.name for output in copy.graph.output}
    copy.graph.output.extend(onnx.helper.make_empty_tensor_value_info(name) for name in names if name not in present)
    options = ort.SessionOptions()
    if custom_ops:
        from ..export.ops.onnxruntime import register_custom_ops

        register_custom_ops(options)
    return ort.InferenceSession(copy.SerializeToString(), options, providers=["CPUExecutionProvider"])


def kept_share(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, int]:
    """TopK indices (…, k): the summed share of each row's reference set found in the candidate's; rows."""
    ours = reference.reshape(-1, reference.shape[-1])
    theirs = candidate.reshape(-1, candidate.shape[-1])
    total = sum(len(np.intersect1d(a, b, assume_unique=True)) / a.size for a, b in zip(ours, theirs) if a.size)
    return float(total), ours.shape[0]


def same_share(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, int]:
    """ArgMax choices: the number identical, and how many there are."""
    return float(np.sum(reference == candidate)), int(reference.size)


def kept_token_agreement(
    reference_path: str | Path,
    candidate_path: str | Path,
    batches,
    *,
    custom_ops: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Per selection node, how often ``candidate_path`` chooses as ``reference_path`` does on ``batches``.

    ``batches``: (images as a float array, how many of them are real) — a static-batch file is fed
    full batches, and only the real rows count. Returns ``{"mean": …, "per_selection": [{"node",
    "op", "agreement"}, …], "reference": …}``.
    """
    import onnx

    reference = onnx.load(str(reference_path))
    candidate = onnx.load(str(candidate_path))
    pairs = match_selections(reference, candidate)
    if not pairs:
        return {"mean": None, "per_selection": [], "reference": str(reference_path)}
    ours = _session_with_outputs(reference, [a.indices for a, _ in pairs], custom_ops)
    theirs = _session_with_outputs(candidate, [b.indices for _, b in pairs], custom_ops)
    input_name, candidate_input = ours.get_inputs()[0].name, theirs.get_inputs()[0].name
    sums = np.zeros(len(pairs))
    counts = np.zeros(len(pairs))
    for images, real in batches:
        first = ours.run([a.indices for a, _ in pairs], {input_name: images})
        second = theirs.run([b.indices for _, b in pairs], {candidate_input: images})
        for index, ((node, _), a, b) in enumerate(zip(pairs, first, second)):
            a, b = a[:real], b[:real]
            share, count = kept_share(a, b) if node.op_type == "TopK" else same_share(a, b)
            sums[index] += share
            counts[index] += count
        if on_batch is not None:
            on_batch(real)
    shares = [float(s / c) if c else None for s, c in zip(sums, counts)]
    measured = [share for share in shares if share is not None]
    return {
        "mean": float(np.mean(measured)) if measured else None,
        "per_selection": [
            {"node": node.name, "op": node.op_type, "agreement": share} for (node, _), share in zip(pairs, shares)
        ],
        "reference": str(reference_path),
    }


__all__ = ["SELECTION_OPS", "SelectionNode", "kept_token_agreement", "match_selections", "selection_nodes"]
