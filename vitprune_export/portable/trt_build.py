"""Build a TensorRT engine from an ONNX file and plain builder settings.

Portable: the standard library and TensorRT only, so the same code runs in
``vitprune build`` and, in the ``portable/`` folder a device bundle ships, on a
device with no vitprune install. The settings are plain data (``vitprune_export.tensorrt.build.
builder_settings`` makes them)::

    {"flavour": "tensorrt" | "tensorrt_rtx", "strongly_typed": bool,
     "builder_flags": ["FP16"], "workspace_bytes": int,
     "builder_optimization_level": int | null,
     "shape_profile": {"images": [[1,3,224,224], [1,…], [8,…]]} | null,
     "timing_cache": "path" | null, "compute_capabilities": ["SM89"],
     "fp32_layers": ["node_layer_norm", …]}

The full :class:`vitprune_export.tensorrt.build.BuilderSettings` (plus ``device`` and
``profile``) may be passed: keys not listed here are carried into the engine's
description and otherwise ignored.

TensorRT 10.x (JetPack 6: 10.3) builds weakly typed networks and takes fp16
from the ``FP16`` builder flag; TensorRT 11.x and TensorRT for RTX build
strongly typed networks, whose precision is the ONNX's own types. The
``EXPLICIT_BATCH`` flag is not set: every network is explicit-batch since 10.0.
With the ``FP16`` flag, the layers of the ONNX nodes named in ``fp32_layers``
(LayerNorm, Softmax, token scores, merge divisions: ``vitprune_export.export.fp16``)
get an fp32 precision constraint (``PREFER_PRECISION_CONSTRAINTS``).

Plugin nodes are checked before the ONNX parser sees them (``plugin_nodes.py``:
TensorRT for RTX has no plugin layers, TensorRT 10/11 must find every node's
creator), without the ``onnx`` package.

Command line (in a bundle)::

    python3 -m portable.trt_build --onnx model.onnx --settings build_settings.json \
        --plugins build/plugins/libvitprune_plugins.so --output model.engine --metadata metadata.json

It writes the engine and, beside it, the engine description of
:mod:`.engine_description` (schema ``vitprune.engine/2``), as ``vitprune build`` does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .cuda import gpu_name
from .engine_description import describe_engine, network_io, write_engine_description
from .files import atomic_write_bytes
from .plugin_nodes import (
    BuildError,
    PluginNode,
    check_plugin_nodes,
    has_plugin_layers,
    is_plugin_node,
    onnx_plugin_nodes,
    refuse_plugins_without_plugin_layers,
)

__all__ = [
    "BuildError",
    "BuiltEngine",
    "PluginNode",
    "build_serialized_engine",
    "check_plugin_nodes",
    "has_plugin_layers",
    "is_plugin_node",
    "keep_layers_fp32",
    "load_plugins",
    "onnx_plugin_nodes",
    "parser_errors",
    "refuse_plugins_without_plugin_layers",
]


def import_flavour(flavour: str | None = None):
    """``tensorrt`` or ``tensorrt_rtx`` (the first importable when ``flavour`` is None)."""
    names = [flavour] if flavour else ["tensorrt", "tensorrt_rtx"]
    problems = []
    for name in names:
        try:
            return importlib.import_module(name)
        except Exception as error:  # ImportError or a broken install (missing libnvinfer)
            problems.append(f"{name}: {error}")
    raise BuildError(
        "TensorRT Python bindings are not importable (" + "; ".join(problems) + "); "
        "on JetPack: sudo apt install python3-libnvinfer"
    )


def load_plugins(trt, library: str | None) -> None:
    """Register the plugin creators of ``library`` with TensorRT's plugin registry."""
    if not library:
        return
    if not Path(library).is_file():
        raise BuildError(f"plugin library {library!r} does not exist; build it first (cmake, see README)")
    try:
        handle = trt.get_plugin_registry().load_library(str(Path(library).resolve()))
    except Exception as error:
        raise BuildError(f"TensorRT could not load plugin library {library!r}: {error}") from None
    if handle is None:
        raise BuildError(f"TensorRT could not load plugin library {library!r} (built for another TensorRT or CUDA?)")


# ---------------------------------------------------------------- fp32 layers under the FP16 flag (weak typing)


def onnx_nodes_of(layer) -> list[str]:
    """The ONNX nodes a parsed layer came from: its metadata ``[ONNX Layer: name]`` entries, else its name."""
    metadata = getattr(layer, "metadata", None)
    names = re.findall(r"\[ONNX Layer: ([^\]]+)\]", metadata) if isinstance(metadata, str) else []
    return names or [layer.name]


def keep_layers_fp32(trt, network, node_names) -> int:
    """Constrain every layer of the named ONNX nodes to fp32 (precision and float outputs); return how many."""
    wanted = set(node_names)
    float_types = {trt.float32, getattr(trt, "float16", trt.float32)}
    count = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if wanted.isdisjoint(onnx_nodes_of(layer)):
            continue
        layer.precision = trt.float32
        for output in range(layer.num_outputs):
            if layer.get_output(output).dtype in float_types:
                layer.set_output_type(output, trt.float32)
        count += 1
    return count


def parser_errors(parser) -> list[str]:
    """Every ONNX parser error as one line: node, operator, description."""
    lines = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        node_name = _call(error, "node_name")
        operator = _call(error, "node_operator")
        where = f"node {node_name!r}" if node_name else f"node #{_call(error, 'node')}"
        if operator:
            where += f" ({operator})"
        line = f"{where}: {_call(error, 'desc')}"
        if operator and operator.startswith("VitPrune"):
            line += " — is the vitprune plugin library loaded (--plugins libvitprune_plugins.so)?"
        lines.append(line)
    return lines


def _call(obj, name: str):
    method = getattr(obj, name, None)
    try:
        return method() if callable(method) else None
    except Exception:
        return None


@dataclass
class BuiltEngine:
    """What a build gives: the engine, the updated timing cache, and facts about the parsed network."""

    engine: bytes
    timing_cache: bytes | None
    io: list = field(default_factory=list)
    layers: int = 0
    fp32_layers: int = 0


def build_serialized_engine(
    trt,
    onnx_path: str | Path,
    settings: dict,
    logger=None,
    library: str | None = None,
    plugin_nodes: list[PluginNode] | None = None,
) -> BuiltEngine:
    """Check plugin nodes, parse, configure and build (the engine, the updated timing cache, the network's I/O).

    ``plugin_nodes``: the ONNX's plugin nodes when the caller has read them already.
    """
    nodes = onnx_plugin_nodes(onnx_path) if plugin_nodes is None else plugin_nodes
    check_plugin_nodes(trt, onnx_path, nodes, library)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if settings.get("strongly_typed"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = parser_errors(parser) or ["no error reported; run with --verbose"]
        raise BuildError(f"TensorRT's ONNX parser rejected {str(onnx_path)!r}: " + " | ".join(errors))

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings["workspace_bytes"]))
    level = settings.get("builder_optimization_level")
    if level is not None:
        config.builder_optimization_level = int(level)
    flag_names = list(settings.get("builder_flags", []))
    for flag in flag_names:
        if not hasattr(trt.BuilderFlag, flag):
            raise BuildError(
                f"this TensorRT ({trt.__version__}) has no builder flag {flag}; it builds strongly typed networks only"
            )
        config.set_flag(getattr(trt.BuilderFlag, flag))
    fp32_layers = 0
    if "FP16" in flag_names and not settings.get("strongly_typed") and settings.get("fp32_layers"):
        fp32_layers = keep_layers_fp32(trt, network, settings["fp32_layers"])
    capabilities = settings.get("compute_capabilities") or []
    if capabilities:
        config.num_compute_capabilities = len(capabilities)
        for index, name in enumerate(capabilities):
            config.set_compute_capability(getattr(trt.ComputeCapability, name), index)
    shapes = settings.get("shape_profile")
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (minimum, optimum, maximum) in shapes.items():
            profile.set_shape(name, tuple(minimum), tuple(optimum), tuple(maximum))
        config.add_optimization_profile(profile)

    cache = None
    cache_path = settings.get("timing_cache")
    if cache_path:
        previous = Path(cache_path).read_bytes() if Path(cache_path).is_file() else b""
        cache = config.create_timing_cache(previous)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            # a cache from another TensorRT/GPU: start a fresh one rather than fail
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)

    io = _network_facts(trt, network)
    layers = _layer_count(network)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(
            "TensorRT could not build the engine (see its log above): unsupported layer, too small "
            "a workspace, or a plugin that failed"
        )
    cache_bytes = bytes(cache.serialize()) if cache is not None else None
    return BuiltEngine(bytes(serialized), cache_bytes, io, layers, fp32_layers)


def _network_facts(trt, network) -> list:
    try:
        return network_io(trt, network)
    except Exception:  # a stand-in network without tensors
        return []


def _layer_count(network) -> int:
    count = getattr(network, "num_layers", 0)
    return count if isinstance(count, int) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a TensorRT engine from an ONNX file and vitprune build settings."
    )
    parser.add_argument("--onnx", required=True)
    parser.add_argument("--settings", required=True, help="build_settings.json written by 'vitprune bundle'")
    parser.add_argument("--output", required=True, help="engine file to write")
    parser.add_argument("--plugins", default=None, help="libvitprune_plugins.so")
    parser.add_argument("--metadata", default=None, help="metadata.json of the ONNX (model, method, schedule)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        settings = json.loads(Path(args.settings).read_text())
        trt = import_flavour(settings.get("flavour"))
        logger = trt.Logger(trt.Logger.VERBOSE if args.verbose else trt.Logger.WARNING)
        nodes = onnx_plugin_nodes(args.onnx)
        refuse_plugins_without_plugin_layers(trt, args.onnx, nodes)  # before any library is loaded
        load_plugins(trt, args.plugins)
        started = time.perf_counter()
        built = build_serialized_engine(trt, args.onnx, settings, logger, library=args.plugins, plugin_nodes=nodes)
        seconds = time.perf_counter() - started
        metadata = json.loads(Path(args.metadata).read_text()) if args.metadata else {}
        description = describe_engine(
            args.output,
            built.engine,
            args.onnx,
            metadata,
            settings,
            {"flavour": trt.__name__, "version": trt.__version__},
            "portable.trt_build",
            io=built.io,
            layers=built.layers,
            gpu=gpu_name(),
            plugin_library=args.plugins,
            build_seconds=seconds,
        )
        atomic_write_bytes(args.output, built.engine)
        if built.timing_cache is not None and settings.get("timing_cache"):
            atomic_write_bytes(settings["timing_cache"], built.timing_cache)
        write_engine_description(args.output, description)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(built.engine) / 1e6:.1f} MB) in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
