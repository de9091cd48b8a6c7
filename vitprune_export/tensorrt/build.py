"""ONNX + device profile (+ plugin library) → TensorRT engine and a JSON beside it.

Two halves:

* plain functions, testable without TensorRT: :func:`builder_settings` turns a
  profile, the TensorRT flavour/version and the ONNX's inputs into the
  builder's settings as plain data; :func:`shape_profile` makes the min/opt/max
  shapes of a dynamic batch axis from the profile's batches;
* :func:`build_engine`, which imports TensorRT lazily (:mod:`.trt_env`), loads
  the plugin library, builds with :mod:`..portable.trt_build` (the same code
  the Jetson bundle runs) and writes the engine, the timing cache and the JSON
  atomically.

TensorRT flavours behind one interface (DESIGN.md "build.py"):

=====================  ==============  =========================================
flavour                network typing  fp16 comes from
=====================  ==============  =========================================
TensorRT 10.x          weak            the ``FP16`` builder flag (JetPack 6: 10.3)
TensorRT ≥ 11          strong          the ONNX's types
TensorRT for RTX       strong          the ONNX's types; no timing cache (JIT)
=====================  ==============  =========================================

Strong typing and fp16: TensorRT 11 removed the precision flags, so an fp32
ONNX builds an fp32 engine. When fp16 is asked for, the ONNX is converted first
(:mod:`.fp16`: weights and activations fp16, the model's inputs and outputs
fp32, LayerNorm, Softmax, token scores, merge divisions and plugin nodes kept
fp32 behind casts, no node left with mixed input types) and the engine JSON says
so. Weak typing (TensorRT 10.3) gets the same fp32 nodes as per-layer precision
constraints under the ``FP16`` flag (``fp32_layers``).

The engine's JSON is written by :mod:`..portable.engine_description`, the
same code a device bundle's ``build_engine.py`` uses.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .profiles import DeviceProfile, load_profile
from ..errors import MissingDependencyError, VitPruneError
from ..portable.engine_description import SCHEMA as ENGINE_JSON_SCHEMA
from ..portable.plugin_nodes import is_plugin_node

log = logging.getLogger("vitprune")

OLDEST_TENSORRT = (10, 3)


@dataclass(frozen=True)
class OnnxInput:
    name: str
    dims: tuple[int | str, ...]  # str (or 0/-1 as int) for a symbolic axis

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.dims) if isinstance(d, str) or d <= 0]


@dataclass(frozen=True)
class BuilderSettings:
    """Everything the TensorRT builder is told, as plain data (JSON-ready)."""

    flavour: str  # "tensorrt" | "tensorrt_rtx"
    tensorrt_version: str
    precision: str  # what the engine computes in: fp32 | fp16
    precision_source: str  # how: builder flag, network types, converted ONNX
    strongly_typed: bool
    builder_flags: list[str]
    convert_onnx_to_fp16: bool
    workspace_bytes: int
    builder_optimization_level: int | None
    shape_profile: dict[str, list[list[int]]] | None
    timing_cache: str | None
    compute_capabilities: list[str]
    notes: list[str] = field(default_factory=list)
    #: ONNX nodes kept fp32 (:func:`.fp16.fp32_nodes`): precision constraints under the FP16 flag
    #: (weak typing), or kept fp32 by the conversion (strong typing); empty for fp32 builds
    fp32_layers: list[str] = field(default_factory=list)

    def for_trt_build(self) -> dict[str, Any]:
        """The subset :func:`~vitprune_export.portable.trt_build.build_serialized_engine` reads."""
        return {
            "flavour": self.flavour,
            "strongly_typed": self.strongly_typed,
            "builder_flags": list(self.builder_flags),
            "workspace_bytes": self.workspace_bytes,
            "builder_optimization_level": self.builder_optimization_level,
            "shape_profile": self.shape_profile,
            "timing_cache": self.timing_cache,
            "compute_capabilities": list(self.compute_capabilities),
            "fp32_layers": list(self.fp32_layers),
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def for_device(self, profile: DeviceProfile) -> dict[str, Any]:
        """Everything the standalone builder reads and the engine description records, with the profile."""
        return {"device": profile.name, "profile": profile.to_dict(), **self.to_dict()}


@dataclass
class BuildResult:
    path: Path
    json_path: Path
    seconds: float
    size_bytes: int
    settings: BuilderSettings
    gpu: str | None
    plugin_library: str | None
    timing_cache: str | None
    description: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- ONNX facts (onnx only, no TensorRT)


def _load_onnx(path: str | Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise VitPruneError(f"{str(path)!r} is not a readable ONNX file ({type(error).__name__}); re-export it") from None


def onnx_inputs(path: str | Path, proto=None) -> list[OnnxInput]:
    """The graph's real inputs (not initialisers) with their dims."""
    proto = proto or _load_onnx(path)
    initialisers = {tensor.name for tensor in proto.graph.initializer}
    inputs = []
    for value in proto.graph.input:
        if value.name in initialisers:
            continue
        dims = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value.type.tensor_type.shape.dim
        )
        inputs.append(OnnxInput(value.name, dims))
    return inputs


def onnx_plugin_ops(path: str | Path, proto=None) -> list[str]:
    """Op types TensorRT must find as plugins: vitprune's ``VitPrune…`` nodes and any non-standard domain."""
    proto = proto or _load_onnx(path)
    return sorted({node.op_type for node in proto.graph.node if is_plugin_node(node.op_type, node.domain)})


def onnx_float_precision(path: str | Path, proto=None) -> str:
    """``fp16`` when the weights are stored as fp16 (an already converted ONNX), else ``fp32``."""
    from onnx import TensorProto

    proto = proto or _load_onnx(path)
    types = [t.data_type for t in proto.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    if types and types.count(TensorProto.FLOAT16) > types.count(TensorProto.FLOAT):
        return "fp16"
    return "fp32"


# ---------------------------------------------------------------- profile → settings (plain data)


def shape_profile(inputs: list[OnnxInput], profile: DeviceProfile) -> tuple[dict[str, list[list[int]]] | None, list[str]]:
    """min/opt/max shapes for a dynamic batch axis from the profile's batches; None when every input is static."""
    build = profile.build
    shapes: dict[str, list[list[int]]] = {}
    notes: list[str] = []
    for value in inputs:
        dynamic = value.dynamic_axes
        if any(axis != 0 for axis in dynamic):
            raise VitPruneError(
                f"ONNX input {value.name!r} has dynamic axes {value.dims} besides the batch; vitprune engines need "
                "static token and image sizes: re-export with 'vitprune export' (only --dynamic-batch is allowed)"
            )
        if not dynamic:
            batch = int(value.dims[0]) if value.dims else 1
            if (build.min_batch, build.max_batch) != (batch, batch):
                notes.append(
                    f"input {value.name!r} has a static batch of {batch}: the engine runs batch {batch} only "
                    f"(profile asks {build.min_batch}–{build.max_batch}; re-export with --dynamic-batch for a range)"
                )
            continue
        rest = [int(d) for d in value.dims[1:]]
        shapes[value.name] = [[build.min_batch, *rest], [build.opt_batch, *rest], [build.max_batch, *rest]]
    return (shapes or None), notes


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _rtx_capability(name: str) -> str:
    return "CURRENT" if name == "current" else name.replace("sm_", "SM")


def builder_settings(
    profile: DeviceProfile,
    flavour: str,
    version: str,
    inputs: list[OnnxInput],
    onnx_precision: str = "fp32",
    fp16: bool | None = None,
    timing_cache: str | Path | None = None,
    fp32_layers: list[str] | None = None,
) -> BuilderSettings:
    """The builder settings for ``profile`` on TensorRT ``flavour``/``version`` (no TensorRT needed).

    ``fp16``: None takes the profile's precision; True/False override it (``--fp16``/``--fp32``).
    ``timing_cache``: overrides the profile's ``timing_cache`` path.
    ``fp32_layers``: the ONNX's nodes to keep fp32 in an fp16 build (:func:`.fp16.fp32_nodes`).
    """
    if flavour not in ("tensorrt", "tensorrt_rtx"):
        raise VitPruneError(f"unknown TensorRT flavour {flavour!r}; expected tensorrt or tensorrt_rtx")
    if not profile.uses_tensorrt:
        raise VitPruneError(
            f"profile {profile.name!r} uses backend {profile.build.backend!r}: there is no engine to build; "
            "measure the ONNX directly with 'vitprune profile MODEL.onnx --backend ort-cpu'"
        )
    if profile.build.backend == "trt-rtx" and flavour != "tensorrt_rtx":
        raise VitPruneError(f"profile {profile.name!r} needs TensorRT for RTX (pip install tensorrt-rtx), found {flavour} {version}")
    rtx = flavour == "tensorrt_rtx"
    if not rtx and _version_tuple(version) < OLDEST_TENSORRT:
        raise VitPruneError(f"TensorRT {version} is too old; vitprune needs TensorRT 10.3 or later (JetPack 6)")
    strongly_typed = rtx or _version_tuple(version) >= (11, 0)
    wanted = profile.build.precision if fp16 is None else ("fp16" if fp16 else "fp32")
    notes: list[str] = []

    builder_flags: list[str] = []
    convert = False
    kept = list(fp32_layers or [])
    if not strongly_typed:
        precision = wanted
        if wanted == "fp16":
            builder_flags.append("FP16")
            source = "weakly typed network, FP16 builder flag (TensorRT picks fp16 or fp32 per layer)"
            if kept:
                builder_flags.append("PREFER_PRECISION_CONSTRAINTS")
                source += f"; {len(kept)} layers constrained to fp32 (LayerNorm, Softmax, token scores, merge divisions)"
        else:
            source = "weakly typed network, fp32"
    elif onnx_precision == "fp16":
        precision = "fp16"
        source = "strongly typed network: the ONNX is already fp16"
        if wanted == "fp32":
            notes.append("fp32 was asked for, but a strongly typed build keeps the ONNX's fp16 types")
        kept = []
    elif wanted == "fp16":
        precision, convert = "fp16", True
        source = ("strongly typed network: ONNX converted to fp16 before the build (inputs/outputs fp32; "
                  f"{len(kept)} nodes kept fp32: LayerNorm, Softmax, token scores, merge divisions, plugin nodes)")
    else:
        precision = "fp32"
        source = "strongly typed network: fp32 ONNX"
    if precision == "fp32":
        kept = []

    if rtx:
        cache = None
        if timing_cache or profile.build.timing_cache:
            notes.append("TensorRT for RTX has no timing cache (kernels are compiled just in time); not used")
        capabilities = [_rtx_capability(c) for c in profile.build.compute_capabilities]
        if not capabilities:
            notes.append("no compute_capabilities: TensorRT for RTX's default portable targets (sm_80/86/89/120)")
        level = profile.build.builder_optimization_level
    else:
        cache = str(timing_cache or profile.build.timing_cache or "") or None
        capabilities = []
        if profile.build.compute_capabilities:
            notes.append("compute_capabilities apply to TensorRT for RTX only; TensorRT builds for the GPU it runs on")
        level = profile.build.builder_optimization_level

    shapes, shape_notes = shape_profile(inputs, profile)
    notes.extend(shape_notes)
    return BuilderSettings(
        flavour=flavour,
        tensorrt_version=version,
        precision=precision,
        precision_source=source,
        strongly_typed=strongly_typed,
        builder_flags=builder_flags,
        convert_onnx_to_fp16=convert,
        workspace_bytes=profile.build.workspace_mb * 2**20,
        builder_optimization_level=level,
        shape_profile=shapes,
        timing_cache=cache,
        compute_capabilities=capabilities,
        notes=notes,
        fp32_layers=kept,
    )


def expected_tensorrt(profile: DeviceProfile) -> tuple[str, str]:
    """The TensorRT a profile's device runs (for settings computed away from it, e.g. a bundle)."""
    if profile.build.backend == "trt-rtx":
        return "tensorrt_rtx", "1.0"
    return "tensorrt", profile.device.tensorrt or "10.3"


def default_engine_path(onnx_path: str | Path, profile: DeviceProfile, precision: str) -> Path:
    return Path("engines") / f"{Path(onnx_path).stem}_{profile.name}_{precision}.engine"


# ---------------------------------------------------------------- fp16 conversion for strongly typed builds


def convert_onnx_to_fp16(source: str | Path, target: str | Path, keep_fp32_ops: list[str]):
    """fp32 ONNX → fp16 ONNX (fp32 inputs/outputs, fragile nodes and ``keep_fp32_ops`` fp32); returns the report."""
    import onnx

    from ..export.fp16 import convert_to_fp16

    model = onnx.load(str(source))
    try:
        converted, report = convert_to_fp16(model, keep_fp32_ops)
    except ValueError as error:
        raise VitPruneError(f"converting the ONNX to fp16 failed ({error}); build fp32 with --fp32") from None
    onnx.save_model(converted, str(target))
    return report


def fp32_layers_of(proto, plugin_ops: list[str]) -> list[str]:
    """The nodes an fp16 build keeps in fp32 (:func:`.fp16.fp32_nodes`)."""
    from ..export.fp16 import fp32_nodes

    return fp32_nodes(proto, plugin_ops)


# ---------------------------------------------------------------- the real build


def gpu_name() -> str | None:
    """The first CUDA GPU's name (driver API, then PyTorch), or None."""
    from ..portable.trt_build import gpu_name as driver_gpu_name

    name = driver_gpu_name()
    if name:
        return name
    try:
        from .env import cuda_gpu_name

        return cuda_gpu_name()
    except Exception:  # torch missing or broken
        return None


def build_engine(
    onnx_path: str | Path,
    profile: str | Path | DeviceProfile,
    output: str | Path | None = None,
    plugins: str | Path | None = None,
    fp16: bool | None = None,
    timing_cache: str | Path | None = None,
    verbose: bool = False,
) -> BuildResult:
    """Build a TensorRT engine for ``profile`` from ``onnx_path``; write it, its JSON and the timing cache."""
    from .. import __version__
    from ..export.onnx import read_metadata
    from ..files import atomic_output, atomic_write_bytes
    from ..portable.engine_description import describe_engine, description_path, encode
    from ..portable.plugin_nodes import BuildError, onnx_plugin_nodes, refuse_plugins_without_plugin_layers
    from ..portable.trt_build import build_serialized_engine
    from .env import default_plugin_library, import_tensorrt, load_plugin_library

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise VitPruneError(f"ONNX file {str(onnx_path)!r} does not exist; make one with 'vitprune export'")
    profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    if not profile.uses_tensorrt:
        raise VitPruneError(
            f"profile {profile.name!r} uses backend {profile.build.backend!r}: there is no engine to build; "
            f"measure the ONNX directly with 'vitprune profile {onnx_path} --backend ort-cpu'"
        )
    proto = _load_onnx(onnx_path)
    metadata = read_metadata(onnx_path)
    inputs = onnx_inputs(onnx_path, proto)
    plugin_ops = onnx_plugin_ops(onnx_path, proto)
    onnx_precision = onnx_float_precision(onnx_path, proto)
    keep_fp32 = fp32_layers_of(proto, plugin_ops) if onnx_precision == "fp32" else []
    del proto

    trt = import_tensorrt(prefer="tensorrt_rtx" if profile.build.backend == "trt-rtx" else None)
    plugin_nodes = onnx_plugin_nodes(onnx_path) if plugin_ops else []
    try:
        refuse_plugins_without_plugin_layers(trt.module, onnx_path, plugin_nodes)
    except BuildError as error:
        raise VitPruneError(str(error)) from None
    library = Path(plugins) if plugins else (default_plugin_library() if plugin_ops else None)
    if plugin_ops and library is None:
        raise VitPruneError(
            f"the ONNX has plugin nodes ({', '.join(plugin_ops)}) and no plugin library was given; "
            "pass --plugins libvitprune_plugins.so (build it with 'vitprune plugins build')"
        )
    gpu = gpu_name()
    if gpu is None and trt.flavour != "tensorrt_rtx":
        raise MissingDependencyError(
            "no CUDA GPU is visible: TensorRT builds an engine for the GPU it runs on; run 'vitprune build' on the "
            "target machine (for a Jetson use 'vitprune bundle')"
        )
    settings = builder_settings(profile, trt.flavour, trt.version, inputs, onnx_precision, fp16, timing_cache, keep_fp32)
    if gpu is None and "CURRENT" in settings.compute_capabilities:
        raise MissingDependencyError(
            "compute_capabilities = ['current'] means 'the GPU in this machine' and no CUDA GPU is visible; "
            "name the target instead (e.g. [\"sm_89\"]) to build ahead of time on the CPU"
        )
    output = Path(output) if output else default_engine_path(onnx_path, profile, settings.precision)
    if library is not None:
        load_plugin_library(library, trt)
    for note in settings.notes:
        log.warning(note)

    module = trt.module
    logger = module.Logger(module.Logger.VERBOSE if verbose else module.Logger.WARNING)
    data = settings.for_device(profile)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vitprune-build-") as scratch:
        source = onnx_path
        if settings.convert_onnx_to_fp16:
            source = Path(scratch) / f"{onnx_path.stem}_fp16.onnx"
            convert_onnx_to_fp16(onnx_path, source, plugin_ops)
        try:
            built = build_serialized_engine(module, source, data, logger, library=str(library) if library else None,
                                            plugin_nodes=plugin_nodes)
        except BuildError as error:
            raise VitPruneError(str(error)) from None
    seconds = time.perf_counter() - started

    description = describe_engine(
        output, built.engine, onnx_path, metadata, data, {"flavour": trt.flavour, "version": trt.version},
        "vitprune build", io=built.io, layers=built.layers, gpu=gpu, plugin_library=str(library) if library else None,
        build_seconds=seconds, vitprune=__version__,
    )
    json_path = description_path(output)
    with atomic_output(output, suffix=".engine") as engine_file, atomic_output(json_path) as json_file:
        engine_file.write_bytes(built.engine)
        json_file.write_bytes(encode(description))
    if built.timing_cache is not None and settings.timing_cache:
        atomic_write_bytes(settings.timing_cache, built.timing_cache)
    return BuildResult(
        path=output, json_path=json_path, seconds=seconds, size_bytes=len(built.engine), settings=settings,
        gpu=gpu, plugin_library=str(library) if library else None, timing_cache=settings.timing_cache,
        description=description,
    )


__all__ = [
    "ENGINE_JSON_SCHEMA",
    "BuildResult",
    "BuilderSettings",
    "OnnxInput",
    "build_engine",
    "builder_settings",
    "convert_onnx_to_fp16",
    "default_engine_path",
    "expected_tensorrt",
    "fp32_layers_of",
    "onnx_float_precision",
    "onnx_inputs",
    "onnx_plugin_ops",
    "shape_profile",
]
