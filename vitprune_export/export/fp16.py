"""fp16 for TensorRT: which ONNX nodes stay fp32, and an fp32 ONNX → fp16 ONNX conversion that keeps them.

TensorRT is driven two ways (see :mod:`vitprune_export.tensorrt.settings`), and both take the same list of
nodes to keep in fp32 from :func:`fp32_nodes`:

* strongly typed (TensorRT ≥ 11, TensorRT for RTX): the ONNX's own types decide
  every layer's precision, so :func:`convert_to_fp16` rewrites the graph — fp16
  weights and activations, fp32 where the list says, a ``Cast`` wherever the two
  meet, so that no node is left with fp32 and fp16 inputs (TensorRT rejects
  "MatMul … must have same input types"); the model's inputs and outputs stay fp32;
* weakly typed (TensorRT 10.3 on JetPack 6): the ``FP16`` builder flag, plus a
  precision constraint (fp32) on each listed layer, applied by
  :mod:`vitprune_export.portable.trt_build` to the layers the ONNX parser names after these nodes.

What stays fp32, and why (fp16 keeps 11 bits of mantissa, max 65504):

* ``LayerNormalization`` (its variance sums squares of the residual stream) and
  ``Softmax`` (exponentials of logits), as TensorRT's own fp16 guidance advises;
* division by a computed value: the size-weighted average of merging
  (ToMe, Bolya et al. ICLR'23 §3, ``x ← Σ s·x / Σ s``), VPA's spread
  ``M / (rowsum(M)·τ)`` with τ = 0.001 (Ishibashi & Meng 2025, Eq. 5), cosine
  normalisation — and what feeds it, walked back as described below;
* norms (``ReduceL2``, ``Sqrt``, ``Pow``, ``ReduceSumSquare``): squares overflow fp16;
* token scores: everything that decides which tokens survive — the input chain
  of every ``TopK`` / ``ArgMax`` / ``ArgMin`` (CLS attention averaged over heads,
  token norms, bipartite similarities), walked back as below, so that fp16
  rounding alone does not reorder near-tied scores;
* plugin nodes (``keep_fp32_ops``).

The walk back from a division, norm or selection goes through cheap reductions,
element-wise ops and data movement, takes in a MatMul of two activations
(attention row, similarity matrix, one-hot merge) and stops there; it never
takes in a Linear layer (a MatMul/Gemm with a weight), a residual ``Add`` or a
``Softmax`` (already fp32 on its own; its logits stay fp16, where TensorRT
accumulates in fp32), so the network's GEMMs stay fp16.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import VitPruneError

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
FP16_MAX = 65504.0

#: kept fp32 on their own, inputs cast up
FP32_OP_TYPES = frozenset(
    {"LayerNormalization", "GroupNormalization", "InstanceNormalization", "Softmax", "LogSoftmax"}
)
#: kept fp32 together with what feeds them (the walk below)
SELECTION_OP_TYPES = frozenset({"TopK", "ArgMax", "ArgMin"})
NORM_OP_TYPES = frozenset({"ReduceL2", "ReduceSumSquare", "LpNormalization", "Sqrt", "Pow", "Reciprocal"})
#: what the walk back from a division, norm or selection passes through
WALK_THROUGH_OP_TYPES = frozenset(
    {
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceL2",
        "ReduceSumSquare",
        "LpNormalization",
        "Mul",
        "Div",
        "Sub",
        "Neg",
        "Abs",
        "Sqrt",
        "Pow",
        "Reciprocal",
        "Exp",
        "Log",
        "Clip",
        "Max",
        "Min",
        "Slice",
        "Gather",
        "GatherElements",
        "Squeeze",
        "Unsqueeze",
        "Reshape",
        "Transpose",
        "Flatten",
        "Expand",
        "Identity",
        "Where",
    }
)
#: float producers whose output type is an attribute the conversion does not rewrite: left fp32
ATTRIBUTE_TYPED_OP_TYPES = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "EyeLike", "Bernoulli", "Multinomial"}
)
#: nodes whose float inputs may have any type (no Cast in front of them)
ANY_INPUT_TYPE_OP_TYPES = frozenset({"Cast", "Shape", "Size", "CastLike"})
#: float inputs that stay fp32 whatever the node computes in (op type → input positions)
FP32_INPUTS = {"Resize": (1, 2)}


@dataclass(frozen=True)
class Fp16Report:
    """What a conversion did: counts for logs, tests and the engine JSON."""

    fp32_nodes: int
    fp16_nodes: int
    casts_added: int
    initialisers_fp16: int
    initialisers_fp32: int
    clamped_values: int


# ---------------------------------------------------------------- types of a float32 graph


def tensor_types(model) -> dict[str, int]:
    """Element type of every tensor of the main graph (ONNX type inference + what the file declares)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # a graph the checker dislikes: fall back to what it declares
        inferred = model
    graph = inferred.graph
    types: dict[str, int] = {}
    for value in [*graph.value_info, *graph.input, *graph.output]:
        if value.type.HasField("tensor_type") and value.type.tensor_type.elem_type:
            types[value.name] = value.type.tensor_type.elem_type
    for tensor in graph.initializer:
        types[tensor.name] = tensor.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    types[node.output[0]] = attribute.t.data_type
    return types


def _is_float(types: dict[str, int], name: str) -> bool:
    return bool(name) and types.get(name) == FLOAT


# ---------------------------------------------------------------- which nodes stay fp32


def _node_key(index: int, node) -> str:
    return node.name or f"#{index}"


def fp32_nodes(model, keep_fp32_ops=(), types: dict[str, int] | None = None) -> list[str]:
    """Names of the nodes to keep in fp32 (see the module docstring), in graph order."""
    return [_node_key(i, model.graph.node[i]) for i in sorted(_fp32_node_indices(model, keep_fp32_ops, types))]


def weight_test(model):
    """``is_weight(name)``: the tensor is an initialiser, a ``Constant`` or a Cast/Identity of constants."""
    nodes = list(model.graph.node)
    constants = {t.name for t in model.graph.initializer}
    constants |= {n.output[0] for n in nodes if n.op_type == "Constant"}
    producer = {output: index for index, node in enumerate(nodes) for output in node.output if output}

    def is_weight(name: str) -> bool:
        return name in constants or (
            name in producer
            and nodes[producer[name]].op_type in ("Cast", "Identity")
            and all(i in constants for i in nodes[producer[name]].input if i)
        )

    return is_weight


def activation_matmul_nodes(model) -> list[str]:
    """Names of the MatMuls of two activations (attention products, similarities, one-hot merges)."""
    is_weight = weight_test(model)
    return [
        _node_key(i, node)
        for i, node in enumerate(model.graph.node)
        if node.op_type == "MatMul" and not any(is_weight(name) for name in node.input)
    ]


def _fp32_node_indices(model, keep_fp32_ops=(), types: dict[str, int] | None = None) -> set[int]:
    types = types if types is not None else tensor_types(model)
    nodes = list(model.graph.node)
    producer = {output: index for index, node in enumerate(nodes) for output in node.output if output}
    keep_ops = set(keep_fp32_ops)
    is_weight = weight_test(model)

    def activation_matmul(node) -> bool:
        return node.op_type == "MatMul" and not any(is_weight(name) for name in node.input)

    island: set[int] = set()
    anchors: list[int] = []
    for index, node in enumerate(nodes):
        if node.op_type in FP32_OP_TYPES or node.op_type in keep_ops or node.op_type in ATTRIBUTE_TYPED_OP_TYPES:
            island.add(index)
        elif node.op_type in SELECTION_OP_TYPES or node.op_type in NORM_OP_TYPES:
            anchors.append(index)
        elif node.op_type == "Div" and len(node.input) > 1 and not is_weight(node.input[1]):
            anchors.append(index)

    stack = list(anchors)
    island.update(anchors)
    while stack:
        node = nodes[stack.pop()]
        for name in node.input:
            if not _is_float(types, name) or name not in producer:
                continue
            source_index = producer[name]
            source = nodes[source_index]
            if source_index in island:
                continue
            if activation_matmul(source):
                island.add(source_index)  # taken in, not walked through
            elif source.op_type in WALK_THROUGH_OP_TYPES:
                island.add(source_index)
                stack.append(source_index)
    return island


# ---------------------------------------------------------------- the conversion


def _to_fp16_array(array):
    import numpy as np

    clipped = np.clip(array, -FP16_MAX, FP16_MAX)
    return clipped.astype(np.float16), int(np.count_nonzero(clipped != array))


def convert_to_fp16(model, keep_fp32_ops=()):
    """An fp16 copy of ``model`` (fp32 inputs/outputs, :func:`fp32_nodes` kept fp32); returns (model, report).

    Every node then has inputs of one float type; :func:`mixed_type_nodes` checks
    the result (ONNX type inference) and a ``ValueError`` names any node left mixed.
    """
    import onnx
    from onnx import helper, numpy_helper

    if any(
        attribute.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
        for node in model.graph.node
        for attribute in node.attribute
    ):
        raise ValueError("graphs with subgraphs (If/Loop/Scan) are not supported by the fp16 conversion")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    _constants_to_initialisers(graph)
    types = tensor_types(model)
    for node in graph.node:  # plugin ops have float outputs even where the file does not declare them
        if node.op_type in set(keep_fp32_ops):
            for output in node.output:
                types.setdefault(output, FLOAT)
    island = _fp32_node_indices(model, keep_fp32_ops, types)
    nodes = list(graph.node)
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    graph_inputs = {value.name for value in graph.input}

    # what each node computes in: FLOAT (kept), FLOAT16, or None (no float tensor)
    compute: dict[int, int | None] = {}
    for index, node in enumerate(nodes):
        touches_float = any(_is_float(types, n) for n in [*node.input, *node.output])
        if node.op_type == "Cast":
            touches_float = any(_is_float(types, n) for n in node.output)
        compute[index] = (FLOAT if index in island else FLOAT16) if touches_float else None
    # a float made from integers (a one-hot Cast, ConstantOfShape) takes its readers' type when they agree
    readers: dict[str, list[int]] = defaultdict(list)
    for index, node in enumerate(nodes):
        for name in node.input:
            readers[name].append(index)
    for index, node in enumerate(nodes):
        makes_float = node.op_type == "ConstantOfShape" or (
            node.op_type == "Cast" and not any(_is_float(types, name) for name in node.input)
        )
        if makes_float and compute[index] == FLOAT16:
            kinds = {compute[reader] for output in node.output for reader in readers[output]}
            if kinds == {FLOAT}:
                compute[index] = FLOAT

    # the type each float activation is stored in
    stored: dict[str, int] = dict.fromkeys(graph_inputs, FLOAT)
    for index, node in enumerate(nodes):
        for output in node.output:
            if _is_float(types, output) and compute[index] is not None:
                stored[output] = compute[index]

    wanted_by_initialiser: dict[str, set[int]] = defaultdict(set)
    new_nodes: list = []
    casts: dict[tuple[str, int], str] = {}
    replaced_inputs: list[tuple[int, int, str]] = []

    def cast_of(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            suffix = "fp16" if to == FLOAT16 else "fp32"
            casts[key] = f"{name}__{suffix}"
            new_nodes.append(helper.make_node("Cast", [name], [casts[key]], name=f"{name}__cast_{suffix}", to=to))
        return casts[key]

    for index, node in enumerate(nodes):
        kind = compute[index]
        if kind is None or node.op_type in ANY_INPUT_TYPE_OP_TYPES:
            continue
        keep_fp32_positions = FP32_INPUTS.get(node.op_type, ())
        for position, name in enumerate(node.input):
            if not _is_float(types, name):
                continue
            want = FLOAT if position in keep_fp32_positions else kind
            if name in initialisers:
                wanted_by_initialiser[name].add(want)
                if want == FLOAT16:
                    replaced_inputs.append((index, position, name))
                continue
            if stored.get(name, FLOAT) != want:
                node.input[position] = cast_of(name, want)

    # initialisers: fp16 when only fp16 nodes read them, fp32 when only fp32 ones, both when shared
    clamped = fp16_count = 0
    shared: dict[str, str] = {}
    for name, wants in wanted_by_initialiser.items():
        if FLOAT16 not in wants:
            continue
        tensor = initialisers[name]
        array, clipped = _to_fp16_array(numpy_helper.to_array(tensor))
        clamped += clipped
        fp16_count += 1
        if FLOAT in wants:
            shared[name] = f"{name}__fp16"
            graph.initializer.append(numpy_helper.from_array(array, shared[name]))
        else:
            tensor.CopyFrom(numpy_helper.from_array(array, name))
    for index, position, name in replaced_inputs:
        if name in shared:
            nodes[index].input[position] = shared[name]

    # attributes that carry a float type
    for index, node in enumerate(nodes):
        if compute[index] != FLOAT16:
            continue
        for attribute in node.attribute:
            if node.op_type == "Cast" and attribute.name == "to" and attribute.i == FLOAT:
                attribute.i = FLOAT16
            elif node.op_type == "ConstantOfShape" and attribute.name == "value" and attribute.t.data_type == FLOAT:
                array, clipped = _to_fp16_array(numpy_helper.to_array(attribute.t))
                clamped += clipped
                attribute.t.CopyFrom(numpy_helper.from_array(array))

    # the model's outputs stay fp32
    for value in graph.output:
        if stored.get(value.name) == FLOAT16:
            inner = f"{value.name}__fp16_out"
            for node in nodes:
                node.output[:] = [inner if o == value.name else o for o in node.output]
                node.input[:] = [inner if i == value.name else i for i in node.input]
            new_nodes.append(helper.make_node("Cast", [inner], [value.name], name=f"{value.name}__cast_fp32", to=FLOAT))

    final_initialisers = {tensor.name: tensor.data_type for tensor in graph.initializer}
    for value in graph.value_info:
        if value.type.tensor_type.elem_type == FLOAT:
            value.type.tensor_type.elem_type = final_initialisers.get(value.name, stored.get(value.name, FLOAT))
    _insert_in_order(graph, new_nodes)
    problems = mixed_type_nodes(model)
    if problems:
        raise ValueError(f"nodes left with fp32 and fp16 inputs: {', '.join(problems[:5])}")
    report = Fp16Report(
        fp32_nodes=sum(1 for k in compute.values() if k == FLOAT),
        fp16_nodes=sum(1 for k in compute.values() if k == FLOAT16),
        casts_added=len(new_nodes),
        initialisers_fp16=fp16_count,
        initialisers_fp32=sum(1 for t in graph.initializer if t.data_type == FLOAT),
        clamped_values=clamped,
    )
    return model, report


def _constants_to_initialisers(graph) -> None:
    """Float ``Constant`` nodes become initialisers, so one rule decides the type of every weight."""
    kept = []
    for node in graph.node:
        value = next((a.t for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and value.data_type == FLOAT:
            tensor = graph.initializer.add()
            tensor.CopyFrom(value)
            tensor.name = node.output[0]
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def _insert_in_order(graph, new_nodes) -> None:
    """Add the new Cast nodes and sort the graph topologically (each node after its inputs' producers)."""
    nodes = [*graph.node, *new_nodes]
    available = {v.name for v in graph.input} | {t.name for t in graph.initializer} | {""}
    producer = {output: index for index, node in enumerate(nodes) for output in node.output}
    order, state = [], [0] * len(nodes)  # 0 new, 1 in progress, 2 done
    for start in range(len(nodes)):
        stack = [(start, 0)]
        while stack:
            index, position = stack.pop()
            if state[index] == 2:
                continue
            state[index] = 1
            inputs = [i for i in nodes[index].input if i not in available and i in producer]
            while position < len(inputs) and state[producer[inputs[position]]] == 2:
                position += 1
            if position < len(inputs):
                stack.append((index, position))
                stack.append((producer[inputs[position]], 0))
                continue
            state[index] = 2
            order.append(nodes[index])
    del graph.node[:]
    graph.node.extend(order)


# ---------------------------------------------------------------- checks


def mixed_type_nodes(model) -> list[str]:
    """Nodes whose float inputs are of more than one type (what a strongly typed TensorRT rejects)."""
    types = tensor_types(model)
    problems = []
    for index, node in enumerate(model.graph.node):
        if node.op_type in ANY_INPUT_TYPE_OP_TYPES:
            continue
        positions = FP32_INPUTS.get(node.op_type, ())
        kinds = {types.get(name) for p, name in enumerate(node.input) if name and p not in positions} & {FLOAT, FLOAT16}
        if len(kinds) > 1:
            problems.append(f"{node.op_type} {_node_key(index, node)!r}")
    return problems


def convert_onnx_to_fp16(source: str | Path, target: str | Path, keep_fp32_ops: list[str], proto=None):
    """fp32 ONNX → fp16 ONNX (fp32 inputs/outputs, fragile nodes and ``keep_fp32_ops`` fp32); returns the report.

    ``proto``: the file already parsed with its weights in it (not converted in place)."""
    import onnx

    model = onnx.ModelProto.FromString(proto.SerializeToString()) if proto is not None else onnx.load(str(source))
    try:
        converted, report = convert_to_fp16(model, keep_fp32_ops)
    except ValueError as error:
        raise VitPruneError(f"converting the ONNX to fp16 failed ({error}); build fp32 with --fp32") from None
    onnx.save_model(converted, str(target))
    return report


__all__ = [
    "FP32_OP_TYPES",
    "Fp16Report",
    "activation_matmul_nodes",
    "convert_onnx_to_fp16",
    "convert_to_fp16",
    "fp32_nodes",
    "mixed_type_nodes",
    "tensor_types",
    "weight_test",
]
