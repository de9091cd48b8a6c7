"""Plugin nodes of an ONNX file, read without the ``onnx`` package, and whether a TensorRT can build them.

Portable (standard library only), imported by :mod:`.trt_build`. A plugin node is a ``VitPrune…`` node or any node outside
the standard ONNX domains; TensorRT builds it through the plugin creator of
the same name, ``plugin_version`` and ``plugin_namespace``.

Both checks run before TensorRT's ONNX parser sees the graph, because a parser
that meets a plugin it cannot build may abort the process (TensorRT for RTX:
"terminate called without an active exception", exit 134):

* TensorRT for RTX has no plugin layers: a graph with plugin nodes is refused
  with what to do instead (rewrite it to standard ops, or use TensorRT 10/11);
* TensorRT 10/11: every plugin node must find its creator in the registry, or
  one error names the node and the creator.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
PLUGIN_LAYER_FREE_FLAVOURS = ("tensorrt_rtx",)


class BuildError(Exception):
    """The engine could not be built; the message says why and what to do."""


@dataclass(frozen=True)
class PluginNode:
    """A node TensorRT can only build through a plugin creator: (op_type, plugin_version, plugin_namespace)."""

    name: str
    op_type: str
    domain: str
    version: str = "1"
    namespace: str = ""


def is_plugin_node(op_type: str, domain: str) -> bool:
    """vitprune's ``VitPrune…`` nodes and any node outside the standard ONNX domains."""
    return op_type.startswith("VitPrune") or domain not in STANDARD_DOMAINS


def _varint(buffer, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(buffer, start: int, end: int):
    """(field number, value) of one protobuf message: ints for varints, (start, end) spans otherwise."""
    position = start
    while position < end:
        key, position = _varint(buffer, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire == 2:
            length, position = _varint(buffer, position)
            value = (position, position + length)
            position += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value = (position, position + size)
            position += size
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")
        yield number, value


def onnx_plugin_nodes(onnx_path: str | Path) -> list[PluginNode]:
    """The plugin nodes of an ONNX file's main graph (ModelProto.graph = 7, GraphProto.node = 1)."""

    def text(buffer, span) -> str:
        return bytes(buffer[span[0] : span[1]]).decode(errors="replace")

    found = []
    try:
        with open(onnx_path, "rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
            for number, graph in _fields(buffer, 0, len(buffer)):
                if number != 7:
                    continue
                for field_number, node in _fields(buffer, *graph):
                    if field_number != 1:
                        continue
                    values = {"name": "", "op_type": "", "domain": ""}
                    attributes = {}
                    for node_field, span in _fields(buffer, *node):
                        if node_field in (3, 4, 7):
                            values[{3: "name", 4: "op_type", 7: "domain"}[node_field]] = text(buffer, span)
                        elif node_field == 5:  # AttributeProto: name = 1, s = 4
                            parts = dict(_fields(buffer, *span))
                            if 1 in parts and isinstance(parts.get(4), tuple):
                                attributes[text(buffer, parts[1])] = text(buffer, parts[4])
                    if is_plugin_node(values["op_type"], values["domain"]):
                        found.append(
                            PluginNode(
                                values["name"],
                                values["op_type"],
                                values["domain"],
                                attributes.get("plugin_version", "1"),
                                attributes.get("plugin_namespace", ""),
                            )
                        )
    except (OSError, ValueError, IndexError) as error:
        raise BuildError(
            f"{str(onnx_path)!r} is not a readable ONNX file ({type(error).__name__}: {error}); re-export it"
        ) from None
    return found


def has_plugin_layers(trt) -> bool:
    """False for TensorRT for RTX, whose networks have no plugin layers."""
    if trt.__name__.split(".")[0] in PLUGIN_LAYER_FREE_FLAVOURS:
        return False
    network = getattr(trt, "INetworkDefinition", None)
    return network is None or hasattr(network, "add_plugin_v3") or hasattr(network, "add_plugin_v2")


def _plugin_summary(nodes: list[PluginNode]) -> str:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    kinds = ", ".join(f"{op} ×{count}" for op, count in counts.items())
    return f"{len(nodes)} plugin node(s): {kinds}, first {nodes[0].name!r}"


def _find_creator(registry, node: PluginNode):
    try:
        if hasattr(registry, "get_creator"):  # TensorRT ≥ 10: IPluginCreatorV3One and V2 creators
            return registry.get_creator(node.op_type, node.version, node.namespace)
        return registry.get_plugin_creator(node.op_type, node.version, node.namespace)
    except Exception:
        return None


def refuse_plugins_without_plugin_layers(trt, onnx_path: str | Path, nodes: list[PluginNode]) -> None:
    """TensorRT for RTX and a graph with plugin nodes: one error saying what to do, before anything is loaded."""
    if nodes and not has_plugin_layers(trt):
        standard = Path(onnx_path).with_name(f"{Path(onnx_path).stem}_standard.onnx")
        raise BuildError(
            f"{str(onnx_path)!r} has {_plugin_summary(nodes)}, and TensorRT for RTX has no plugin layers; "
            f"rewrite them to standard ops with 'vitprune rewrite {onnx_path} --to standard -o {standard}' "
            "and build that, or build this graph on TensorRT 10/11 with --plugins libvitprune_plugins.so"
        )


def check_plugin_nodes(trt, onnx_path: str | Path, nodes: list[PluginNode], library: str | None = None) -> None:
    """Refuse, before parsing, a graph whose plugin nodes this TensorRT cannot build; name node and creator."""
    if not nodes:
        return
    refuse_plugins_without_plugin_layers(trt, onnx_path, nodes)
    registry = trt.get_plugin_registry()
    for node in nodes:
        if _find_creator(registry, node) is None:
            where = (
                f"the plugin library {library!r} does not register it (rebuild it for this TensorRT with "
                "'vitprune plugins build')"
                if library
                else "no plugin library is loaded: pass --plugins libvitprune_plugins.so (build it with 'vitprune plugins build')"
            )
            raise BuildError(
                f"node {node.name!r} needs the TensorRT plugin creator {node.op_type!r} (version {node.version!r}, "
                f"namespace {node.namespace!r}); {where}"
            )
