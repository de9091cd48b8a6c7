"""ONNX graph passes between the two forms of a pruned ViT (onnx-graphsurgeon).

* ``plugins``: one node per pruning layer, domain ``vitprune``, ``op_type`` = the
  TensorRT plugin name (``VitPruneTopKSelect``, ``VitPruneVPA``,
  ``VitPruneToMeMerge``), attributes ``plugin_version`` and ``plugin_namespace``
  (strings) plus the op's own ints/floats. TensorRT's ONNX parser sends an
  unknown ``op_type`` to its fallback plugin importer, which looks the creator up
  by name, version and namespace (plain nodes: TensorRT 10.3 on JetPack 6 does
  not take plugins inside ONNX local functions); onnxruntime-extensions runs the
  same node as ``vitprune::<op_type>`` (:mod:`vitprune_export.export.ops.onnxruntime`).
  ``--to plugins`` normalises custom nodes of that op type (any domain, missing
  plugin attributes) into that form.
* ``standard``: every plugin node replaced by plain ONNX ops
  (:mod:`vitprune_export.export.ops.decompose`); runs in ONNX Runtime and TensorRT with
  no plugin library.

Both outputs are checked before anything is written: ``onnx.checker``, no
ScatterND/ScatterElements with a reduction, no TopK with K > 3840
(:func:`forbidden_ops`), and the logits of the two forms agree in ONNX Runtime
(:func:`rewrite_parity`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MissingDependencyError, VitPruneError
from ..files import atomic_output, check_output
from .ops.spec import DOMAIN, DOMAIN_VERSION, OPS
from .parity import DEFAULT_PARITY_TOLERANCE, check_tolerance

TARGETS = ("plugins", "standard")


@dataclass
class RewriteResult:
    path: Path
    target: str
    plugin_nodes_in: int
    plugin_nodes_out: int
    nodes_out: int
    seconds: float
    rewritten: list[str] = field(default_factory=list)
    parity_max_abs_diff: float | None = None


def _import_graphsurgeon():
    try:
        import onnx_graphsurgeon as gs
    except ImportError:
        raise MissingDependencyError(
            "vitprune rewrite needs onnx-graphsurgeon; pip install onnx-graphsurgeon"
        ) from None
    return gs


def load_model(path: str | Path):
    """The ONNX model at ``path``; a one-line error when it is missing or unreadable."""
    import onnx

    from ..record import check_onnx_input

    path = Path(path)
    check_onnx_input(path, hint="export one with 'vitprune export --plugin-nodes'")
    try:
        return onnx.load(str(path))
    except Exception as error:
        raise VitPruneError(
            f"{str(path)!r} is not a readable ONNX file ({type(error).__name__}); re-export it"
        ) from None


def plugin_nodes(proto) -> list:
    """The vitprune nodes (any domain) of a model proto's main graph."""
    return [node for node in proto.graph.node if node.op_type in OPS]


def plugin_attributes(node) -> dict:
    """A plugin node's attributes as Python values (strings decoded)."""
    import onnx

    values = {}
    for attribute in node.attribute:
        value = onnx.helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def forbidden_ops(proto) -> list[str]:
    """What TensorRT 10.3 cannot run: ScatterND/ScatterElements with a reduction, TopK with K > 3840."""
    from onnx import numpy_helper

    from .ops.decompose import TENSORRT_TOPK_LIMIT

    constants = {init.name: init for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t
    problems = []
    for node in proto.graph.node:
        if node.op_type in ("ScatterND", "ScatterElements"):
            reduction = next((a.s.decode() for a in node.attribute if a.name == "reduction"), "none")
            if reduction != "none":
                problems.append(f"{node.op_type} {node.name!r} with reduction={reduction}")
        if node.op_type == "TopK" and len(node.input) > 1:
            k = constants.get(node.input[1])
            if k is None:
                problems.append(f"TopK {node.name!r} with a K that is not a constant")
            elif int(numpy_helper.to_array(k).reshape(-1)[0]) > TENSORRT_TOPK_LIMIT:
                problems.append(f"TopK {node.name!r} with K > {TENSORRT_TOPK_LIMIT}")
    return problems


def _check_attributes(node, spec) -> dict:
    attrs = dict(node.attrs)
    missing = [name for name in spec.attributes if name not in attrs]
    if missing:
        raise VitPruneError(
            f"node {node.name!r} ({node.op}) lacks attribute(s) {', '.join(missing)}; re-export with 'vitprune export --plugin-nodes'"
        )
    return attrs


def _to_plugins(graph) -> list[str]:
    names = []
    for node in graph.nodes:
        spec = OPS.get(node.op)
        if spec is None:
            continue
        attrs = _check_attributes(node, spec)
        node.domain = DOMAIN
        node.attrs = {
            "plugin_version": str(attrs.get("plugin_version", spec.version)),
            "plugin_namespace": str(attrs.get("plugin_namespace", spec.namespace)),
            **{name: kind(attrs[name]) for name, kind in spec.attributes.items()},
        }
        names.append(node.name)
    return names


def _static_tokens(node) -> int:
    shape = node.inputs[0].shape
    if not shape or len(shape) != 3 or not isinstance(shape[1], int):
        raise VitPruneError(
            f"node {node.name!r}: the token count of its input is not static ({shape}); "
            "export with static token counts (vitprune export does)"
        )
    return shape[1]


def _to_standard(graph) -> list[str]:
    from .ops.decompose import DECOMPOSITIONS, GraphBuilder

    names = []
    for node in [n for n in graph.nodes if n.op in OPS]:
        spec = OPS[node.op]
        attrs = _check_attributes(node, spec)
        scalars = {name: kind(attrs[name]) for name, kind in spec.attributes.items()}
        inputs, outputs = list(node.inputs), list(node.outputs)
        builder = GraphBuilder(graph, node.name or node.op)
        results = DECOMPOSITIONS[node.op](builder, *inputs, **scalars, tokens_in=_static_tokens(node))
        node.inputs.clear()
        node.outputs.clear()
        for result, original in zip(results, outputs):
            producer = result.inputs[0]
            producer.outputs[producer.outputs.index(result)] = original
        names.append(node.name)
    return names


def rewrite_model(proto, target: str):
    """Return a new model proto in form ``target`` (``plugins`` | ``standard``) and the rewritten node names."""
    import onnx

    if target not in TARGETS:
        raise VitPruneError(f"--to must be one of {', '.join(TARGETS)}, not {target!r}")
    gs = _import_graphsurgeon()
    graph = gs.import_onnx(proto)
    names = _to_plugins(graph) if target == "plugins" else _to_standard(graph)
    graph.cleanup().toposort()
    if target == "standard":
        graph.import_domains = [d for d in (graph.import_domains or []) if d.domain != DOMAIN]
    elif names and not any(d.domain == DOMAIN for d in (graph.import_domains or [])):
        graph.import_domains = list(graph.import_domains or []) + [onnx.helper.make_opsetid(DOMAIN, DOMAIN_VERSION)]
    result = gs.export_onnx(graph)
    result.ir_version = min(proto.ir_version, 10) if target == "plugins" else proto.ir_version
    del result.metadata_props[:]
    for prop in proto.metadata_props:
        entry = result.metadata_props.add()
        entry.key, entry.value = prop.key, prop.value
    _mark_metadata(result, target)
    return result, names


def _mark_metadata(proto, target: str) -> None:
    from ..record import PruningRecord

    record = PruningRecord.from_proto(proto)
    if record is not None:
        record.replace(plugins=target == "plugins", rewrite=target).write_into(proto)


def rewrite_onnx(
    input_path: str | Path,
    output_path: str | Path,
    target: str,
    check: bool = True,
    atol: float = DEFAULT_PARITY_TOLERANCE,
    force: bool = True,
) -> RewriteResult:
    """Rewrite ``input_path`` into form ``target`` and write it atomically to ``output_path``.

    ``check``: ``onnx.checker``, :func:`forbidden_ops` and :func:`rewrite_parity` (max |Δ| of the
    logits ≤ ``atol``) on the result; any problem is an error and nothing is written.
    ``force``: replace ``output_path`` when it exists (else a VitPruneError before any work).
    """
    import onnx

    started = time.perf_counter()
    output_path = Path(output_path)
    if output_path.resolve() == Path(input_path).resolve():
        raise VitPruneError("--output must differ from the input file")
    if target not in TARGETS:
        raise VitPruneError(f"unknown --to {target!r}; choose one of {', '.join(TARGETS)}")
    check_tolerance(atol)
    proto = load_model(input_path)
    check_output(output_path, "--output", force=force, suffix=".onnx")
    before = len(plugin_nodes(proto))
    if target == "plugins" and before == 0:
        raise VitPruneError(
            f"{str(input_path)!r} has no vitprune custom nodes to turn into plugin nodes; "
            "export it with 'vitprune export --plugin-nodes'"
        )
    result, names = rewrite_model(proto, target)
    difference = None
    if check:
        try:
            onnx.checker.check_model(result)
        except onnx.checker.ValidationError as error:
            raise VitPruneError(f"the rewritten graph fails onnx.checker: {str(error).splitlines()[0]}") from None
        problems = forbidden_ops(result)
        if problems:
            raise VitPruneError(f"the rewritten graph holds ops TensorRT 10.3 rejects: {'; '.join(problems)}")
    with atomic_output(output_path, suffix=".onnx") as temporary:
        onnx.save_model(result, str(temporary))
        if check:
            difference = rewrite_parity(input_path, temporary)
            if difference is not None and not difference <= atol:
                raise VitPruneError(
                    f"the rewritten graph differs from the input by {difference:.3g} (> --atol {atol:g}); nothing written"
                )
    return RewriteResult(
        path=output_path,
        target=target,
        plugin_nodes_in=before,
        plugin_nodes_out=len(plugin_nodes(result)),
        nodes_out=len(result.graph.node),
        seconds=time.perf_counter() - started,
        rewritten=names,
        parity_max_abs_diff=difference,
    )


def rewrite_parity(original: str | Path, rewritten: str | Path, batch: int = 1, seed: int = 0) -> float | None:
    """max |Δ| between the logits of two forms of a model in ONNX Runtime (custom ops registered).

    None when ONNX Runtime cannot run the original (custom nodes of a foreign domain with no opset
    import, say, which the rewrite to plugin nodes repairs): there is nothing to compare with.
    """
    import numpy as np
    import onnx
    import torch

    from .onnx import run_onnxruntime

    proto = onnx.load(str(original), load_external_data=False)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else batch for d in dims]
    shape[0] = batch
    images = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    try:
        before = run_onnxruntime(original, images, custom_ops=True)
    except Exception:  # onnxruntime raises its own exception types for a graph it cannot load
        return None
    after = run_onnxruntime(rewritten, images, custom_ops=True)
    return float(np.abs(before - after).max())


__all__ = [
    "RewriteResult",
    "TARGETS",
    "forbidden_ops",
    "plugin_attributes",
    "plugin_nodes",
    "rewrite_model",
    "rewrite_onnx",
    "rewrite_parity",
]
