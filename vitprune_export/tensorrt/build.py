"""ONNX + device profile (+ plugin library) → TensorRT engine and the JSON beside it.

:func:`build_engine` imports TensorRT lazily (:mod:`.env`), loads the plugin
library, builds with :mod:`..portable.trt_build` (the same code a device bundle
runs) and writes the engine, the timing cache and the engine description
(:mod:`..portable.engine_description`, with the ONNX's pruning record) atomically.
:func:`describe_build` computes the same settings without building: for the
installed TensorRT, or the one the profile names (``vitprune build --dry-run``).
The settings themselves are :mod:`.settings`.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, VitPruneError
from ..record import OnnxArtifact
from .profiles import RTX_ARCHES, DeviceProfile, load_profile
from .settings import BuilderSettings, OnnxFacts, builder_settings, expected_tensorrt

log = logging.getLogger("vitprune")


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


def default_engine_path(onnx_path: str | Path, profile: DeviceProfile, precision: str) -> Path:
    return Path("engines") / f"{Path(onnx_path).stem}_{profile.name}_{precision}.engine"


def _engine_profile(profile: str | Path | DeviceProfile, onnx_path: Path) -> DeviceProfile:
    """The profile, loaded; a one-line error when it builds no engine (an ONNX Runtime profile)."""
    profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    if not profile.uses_tensorrt:
        raise VitPruneError(
            f"profile {profile.name!r} uses backend {profile.build.backend!r}: there is no engine to build; "
            f"measure the ONNX directly with 'vitprune profile {onnx_path} --backend ort-cpu'"
        )
    return profile


def refuse_unreachable_target(profile: DeviceProfile, flavour: str, version: str) -> None:
    """A one-line error when the installed builder cannot make an engine that runs on ``profile``'s device.

    TensorRT for RTX builds for the RTX architectures only (not Hopper, not Orin), and a profile that names
    its device's TensorRT (Jetson: 10.3 in JetPack 6) gets an engine only from that TensorRT, on the device:
    engines are not portable across TensorRT versions.
    """
    if profile.build.backend == "trt-rtx":
        return
    arch = profile.device.arch.lower()
    if flavour == "tensorrt_rtx" and arch.startswith("sm_") and arch not in RTX_ARCHES:
        raise VitPruneError(
            f"profile {profile.name!r} targets {arch}, which TensorRT for RTX (the TensorRT installed here) does "
            f"not build for ({', '.join(RTX_ARCHES)}); on that GPU install TensorRT (pip install tensorrt), "
            "or pick an RTX profile ('vitprune profiles')"
        )
    wanted = profile.device.tensorrt
    installed = "TensorRT for RTX " + version if flavour == "tensorrt_rtx" else "TensorRT " + version
    if wanted and (flavour != "tensorrt" or not (version == wanted or version.startswith(wanted + "."))):
        raise VitPruneError(
            f"profile {profile.name!r} runs engines of TensorRT {wanted} on its device, not of {installed}; "
            f"make a bundle ('vitprune bundle FILE.onnx --profile {profile.name}') and build it there"
        )


def describe_build(
    onnx_path: str | Path,
    profile: str | Path | DeviceProfile,
    fp16: bool | None = None,
    timing_cache: str | Path | None = None,
) -> tuple[BuilderSettings, str, DeviceProfile]:
    """The builder settings ``build_engine`` would use, where its TensorRT comes from (``installed``, or the
    profile's when none is installed), and the profile; nothing is built."""
    from .env import import_tensorrt

    onnx_path = Path(onnx_path)
    profile = _engine_profile(profile, onnx_path)
    artifact = OnnxArtifact.open(onnx_path)
    try:
        installed = import_tensorrt(prefer="tensorrt_rtx" if profile.build.backend == "trt-rtx" else None)
        flavour, version, origin = installed.flavour, installed.version, "installed"
    except MissingDependencyError:
        flavour, version = expected_tensorrt(profile)
        origin = "expected by the profile (TensorRT is not installed here)"
    facts = OnnxFacts.read(onnx_path, artifact.proto)
    settings = builder_settings(
        profile, flavour, version, facts.inputs, facts.precision, fp16, timing_cache, facts.fp32_layers
    )
    return settings, origin, profile


# ---------------------------------------------------------------- the real build


def gpu_name() -> str | None:
    """The first CUDA GPU's name (driver API, then PyTorch), or None."""
    from ..portable.cuda import gpu_name as driver_gpu_name

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
    force: bool = True,
) -> BuildResult:
    """Build a TensorRT engine for ``profile`` from ``onnx_path``; write it, its JSON and the timing cache.

    ``force``: replace an existing engine (else a VitPruneError before the build starts).
    """
    from .. import __version__
    from ..export.fp16 import convert_onnx_to_fp16
    from ..files import atomic_output, atomic_write_bytes, check_output
    from ..portable.engine_description import describe_engine, description_path, encode
    from ..portable.plugin_nodes import BuildError, onnx_plugin_nodes, refuse_plugins_without_plugin_layers
    from ..portable.trt_build import build_serialized_engine
    from .env import default_plugin_library, import_tensorrt, load_plugin_library

    onnx_path = Path(onnx_path)
    profile = _engine_profile(profile, onnx_path)
    artifact = OnnxArtifact.open(onnx_path)  # the one parse of the file: facts, record and conversion use it
    facts = OnnxFacts.read(onnx_path, artifact.proto)
    plugin_ops = facts.plugin_ops
    record = artifact.record

    trt = import_tensorrt(prefer="tensorrt_rtx" if profile.build.backend == "trt-rtx" else None)
    refuse_unreachable_target(profile, trt.flavour, trt.version)
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
    settings = builder_settings(
        profile, trt.flavour, trt.version, facts.inputs, facts.precision, fp16, timing_cache, facts.fp32_layers
    )
    if gpu is None and "CURRENT" in settings.compute_capabilities:
        raise MissingDependencyError(
            "compute_capabilities = ['current'] means 'the GPU in this machine' and no CUDA GPU is visible; "
            'name the target instead (e.g. ["sm_89"]) to build ahead of time on the CPU'
        )
    output = Path(output) if output else default_engine_path(onnx_path, profile, settings.precision)
    check_output(output, "--output", force=force)
    check_output(description_path(output), "--output")
    for cache in {str(path) for path in (timing_cache, settings.timing_cache) if path}:
        check_output(cache, "--timing-cache")
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
            convert_onnx_to_fp16(
                onnx_path, source, plugin_ops, proto=None if artifact.has_external_data else artifact.proto
            )
        try:
            built = build_serialized_engine(
                module, source, data, logger, library=str(library) if library else None, plugin_nodes=plugin_nodes
            )
        except BuildError as error:
            raise VitPruneError(str(error)) from None
    seconds = time.perf_counter() - started

    description = describe_engine(
        output,
        built.engine,
        onnx_path,
        record.to_metadata() if record else {},
        data,
        {"flavour": trt.flavour, "version": trt.version},
        "vitprune build",
        io=built.io,
        layers=built.layers,
        gpu=gpu,
        plugin_library=str(library) if library else None,
        build_seconds=seconds,
        vitprune=__version__,
    )
    json_path = description_path(output)
    with atomic_output(output, suffix=".engine") as engine_file, atomic_output(json_path) as json_file:
        engine_file.write_bytes(built.engine)
        json_file.write_bytes(encode(description))
    if built.timing_cache is not None and settings.timing_cache:
        atomic_write_bytes(settings.timing_cache, built.timing_cache)
    return BuildResult(
        path=output,
        json_path=json_path,
        seconds=seconds,
        size_bytes=len(built.engine),
        settings=settings,
        gpu=gpu,
        plugin_library=str(library) if library else None,
        timing_cache=settings.timing_cache,
        description=description,
    )


__all__ = ["BuildResult", "build_engine", "default_engine_path", "describe_build", "gpu_name"]
