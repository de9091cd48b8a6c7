"""Device profile + TensorRT flavour + ONNX facts → the builder's settings, as plain data (no TensorRT needed).

TensorRT flavours behind one interface:

=====================  ==============  =========================================
flavour                network typing  fp16 comes from
=====================  ==============  =========================================
TensorRT 10.x          weak            the ``FP16`` builder flag (JetPack 6: 10.3)
TensorRT ≥ 11          strong          the ONNX's types
TensorRT for RTX       strong          the ONNX's types; no timing cache (JIT)
=====================  ==============  =========================================

Strong typing and fp16: TensorRT 11 removed the precision flags, so an fp32
ONNX builds an fp32 engine. When fp16 is asked for, the ONNX is converted first
(:mod:`..export.fp16`: weights and activations fp16, the model's inputs and
outputs fp32, LayerNorm, Softmax, token scores, merge divisions and plugin nodes
kept fp32 behind casts, no node left with mixed input types) and the engine JSON
says so. Weak typing (TensorRT 10.3) gets the same fp32 nodes as per-layer
precision constraints under the ``FP16`` flag (``fp32_layers``).

:class:`OnnxFacts` reads what the settings depend on from an ONNX file once
(inputs, plugin ops, float precision, the nodes an fp16 build keeps fp32);
:func:`builder_settings` turns them, a profile and a TensorRT flavour/version
into :class:`BuilderSettings`, which :mod:`..portable.trt_build` applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..portable.plugin_nodes import is_plugin_node
from .profiles import DeviceProfile

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
    precision: str  # what the engine computes in: fp32 | fp16 | int8 | fp8 (Q/DQ: its linear layers)
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
    #: ONNX nodes kept fp32 (:func:`..export.fp16.fp32_nodes`): precision constraints under the FP16 flag
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


# ---------------------------------------------------------------- ONNX facts (onnx only, no TensorRT)


def load_onnx(path: str | Path):
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise VitPruneError(
            f"{str(path)!r} is not a readable ONNX file ({type(error).__name__}); re-export it"
        ) from None


def onnx_inputs(path: str | Path, proto=None) -> list[OnnxInput]:
    """The graph's real inputs (not initialisers) with their dims."""
    proto = proto or load_onnx(path)
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
    proto = proto or load_onnx(path)
    return sorted({node.op_type for node in proto.graph.node if is_plugin_node(node.op_type, node.domain)})


def onnx_float_precision(path: str | Path, proto=None) -> str:
    """``fp16`` when the weights are stored as fp16 (an already converted ONNX), else ``fp32``."""
    from onnx import TensorProto

    proto = proto or load_onnx(path)
    types = [t.data_type for t in proto.graph.initializer if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)]
    if types and types.count(TensorProto.FLOAT16) > types.count(TensorProto.FLOAT):
        return "fp16"
    return "fp32"


#: the precisions of an explicitly quantized (Q/DQ) ONNX: its linear layers' type (the rest is float)
QUANTIZED_PRECISIONS = ("int8", "fp8")
#: FP8 tensor cores: Ada (SM89) and newer; Ampere (SM80/86/87: RTX 30, A100, Orin) has none
FP8_MIN_SM = 89


def onnx_quantized_precision(proto) -> str | None:
    """``int8`` or ``fp8`` for an explicitly quantized ONNX (``DequantizeLinear`` of 8-bit weights), else None."""
    from onnx import TensorProto

    initialisers = {tensor.name: tensor.data_type for tensor in proto.graph.initializer}
    types = {
        initialisers.get(node.input[0])
        for node in proto.graph.node
        if node.op_type == "DequantizeLinear" and node.input
    }
    if TensorProto.FLOAT8E4M3FN in types:
        return "fp8"
    if TensorProto.INT8 in types or any(node.op_type == "QuantizeLinear" for node in proto.graph.node):
        return "int8"
    return None


def fp32_layers_of(proto, plugin_ops: list[str]) -> list[str]:
    """The nodes an fp16 build keeps in fp32 (:func:`..export.fp16.fp32_nodes`)."""
    from ..export.fp16 import fp32_nodes

    return fp32_nodes(proto, plugin_ops)


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder settings depend on, read once from an ONNX file."""

    inputs: list[OnnxInput]
    plugin_ops: list[str]
    precision: str  # fp32 | fp16: how the weights are stored; int8 | fp8: explicitly quantized (Q/DQ), float fp32
    fp32_layers: list[str]  # nodes an fp16 build keeps fp32 (empty for an fp16 ONNX)

    @classmethod
    def read(cls, path: str | Path, proto=None) -> OnnxFacts:
        """The facts of the ONNX file at ``path``; ``proto``: the file already parsed (an :class:`OnnxArtifact`'s)."""
        proto = proto if proto is not None else load_onnx(path)
        plugin_ops = onnx_plugin_ops(path, proto)
        precision = onnx_quantized_precision(proto) or onnx_float_precision(path, proto)
        keep = fp32_layers_of(proto, plugin_ops) if precision != "fp16" else []
        return cls(onnx_inputs(path, proto), plugin_ops, precision, keep)


# ---------------------------------------------------------------- profile → settings (plain data)


def shape_profile(
    inputs: list[OnnxInput], profile: DeviceProfile
) -> tuple[dict[str, list[list[int]]] | None, list[str]]:
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
    ``fp32_layers``: the ONNX's nodes to keep fp32 in an fp16 build (:attr:`OnnxFacts.fp32_layers`).
    """
    if flavour not in ("tensorrt", "tensorrt_rtx"):
        raise VitPruneError(f"unknown TensorRT flavour {flavour!r}; expected tensorrt or tensorrt_rtx")
    if not profile.uses_tensorrt:
        raise VitPruneError(
            f"profile {profile.name!r} uses backend {profile.build.backend!r}: there is no engine to build; "
            "measure the ONNX directly with 'vitprune profile MODEL.onnx --backend ort-cpu'"
        )
    if profile.build.backend == "trt-rtx" and flavour != "tensorrt_rtx":
        raise VitPruneError(
            f"profile {profile.name!r} needs TensorRT for RTX (pip install tensorrt-rtx), found {flavour} {version}"
        )
    rtx = flavour == "tensorrt_rtx"
    if not rtx and _version_tuple(version) < OLDEST_TENSORRT:
        raise VitPruneError(f"TensorRT {version} is too old; vitprune needs TensorRT 10.3 or later (JetPack 6)")
    strongly_typed = rtx or _version_tuple(version) >= (11, 0)
    wanted = profile.build.precision if fp16 is None else ("fp16" if fp16 else "fp32")
    notes: list[str] = []

    builder_flags: list[str] = []
    convert = False
    kept = list(fp32_layers or [])
    if onnx_precision in QUANTIZED_PRECISIONS:
        refuse_unsupported_quantization(profile, onnx_precision, rtx)
        precision = onnx_precision
        if strongly_typed:
            source = (
                f"strongly typed network: explicit Q/DQ, the linear layers in {onnx_precision}, the rest as the "
                "ONNX's types (fp32)"
            )
            if wanted == "fp16":
                notes.append(
                    "the float parts of a quantized ONNX stay fp32 in a strongly typed build (the ONNX's own types)"
                )
            kept = []
        else:
            builder_flags.append(onnx_precision.upper())  # INT8 / FP8: weakly typed TensorRT 10 needs it for Q/DQ
            source = f"weakly typed network, explicit Q/DQ ({onnx_precision.upper()} builder flag)"
            if wanted == "fp16":
                builder_flags.append("FP16")
                source += ", the float parts in fp16 (FP16 flag)"
                if kept:
                    builder_flags.append("PREFER_PRECISION_CONSTRAINTS")
                    source += f"; {len(kept)} layers constrained to fp32 (LayerNorm, Softmax, token scores, …)"
            else:
                kept = []
    elif not strongly_typed:
        precision = wanted
        if wanted == "fp16":
            builder_flags.append("FP16")
            source = "weakly typed network, FP16 builder flag (TensorRT picks fp16 or fp32 per layer)"
            if kept:
                builder_flags.append("PREFER_PRECISION_CONSTRAINTS")
                source += (
                    f"; {len(kept)} layers constrained to fp32 (LayerNorm, Softmax, token scores, merge divisions)"
                )
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
        source = (
            "strongly typed network: ONNX converted to fp16 before the build (inputs/outputs fp32; "
            f"{len(kept)} nodes kept fp32: LayerNorm, Softmax, token scores, merge divisions, plugin nodes)"
        )
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


def _sm_numbers(names) -> list[int]:
    return [int(name[3:]) for name in names if name.startswith("sm_") and name[3:].isdigit()]


def profile_target_sms(profile: DeviceProfile, rtx: bool) -> list[int]:
    """The GPU architectures an engine for ``profile`` runs on (SM numbers; empty when unknown).

    TensorRT for RTX builds for the profile's ``compute_capabilities`` (its default portable set
    when none are given); TensorRT builds for the profile's GPU, ``device.arch``.
    """
    from .profiles import RTX_ARCHES

    if rtx:
        named = [name for name in profile.build.compute_capabilities if name != "current"]
        if named or profile.build.compute_capabilities:
            return _sm_numbers(named)
        return [sm for sm in _sm_numbers(RTX_ARCHES) if sm >= 80]  # the default targets: sm_80/86/89/120
    return _sm_numbers([profile.device.arch])


def refuse_unsupported_quantization(profile: DeviceProfile, precision: str, rtx: bool) -> None:
    """FP8 needs SM89 or newer on every GPU the engine targets: refuse a profile that has an older one."""
    if precision != "fp8":
        return
    older = [sm for sm in profile_target_sms(profile, rtx) if sm < FP8_MIN_SM]
    if older:
        targets = ", ".join(f"sm_{sm}" for sm in older)
        raise VitPruneError(
            f"profile {profile.name!r} targets {targets}: no FP8 there (SM89 and newer: Ada, Hopper, Blackwell); "
            "quantize with --precision int8 for it, or build the FP8 file for an SM89+ profile "
            '(e.g. --profile rtx4090, or compute_capabilities = ["sm_89"])'
        )


def expected_tensorrt(profile: DeviceProfile) -> tuple[str, str]:
    """The TensorRT a profile's device runs (for settings computed away from it, e.g. a bundle)."""
    if profile.build.backend == "trt-rtx":
        return "tensorrt_rtx", "1.0"
    return "tensorrt", profile.device.tensorrt or "10.3"


__all__ = [
    "BuilderSettings",
    "OnnxFacts",
    "OnnxInput",
    "builder_settings",
    "expected_tensorrt",
    "fp32_layers_of",
    "load_onnx",
    "onnx_float_precision",
    "onnx_quantized_precision",
    "profile_target_sms",
    "refuse_unsupported_quantization",
    "onnx_inputs",
    "onnx_plugin_ops",
    "shape_profile",
]
