"""A self-contained folder to build and measure an engine on a device (Jetson Orin Nano).

Engines are not portable across GPU architectures or TensorRT versions, so
for a Jetson the engine is built on the device. :func:`bundle` writes, in one atomic step (a temporary folder
beside ``out_dir``, renamed at the end):

* the ONNX (converted to fp16 first when the device's TensorRT is strongly
  typed and the profile asks for fp16) and its pruning record as ``metadata.json``;
* ``profile.toml`` and ``build_settings.json`` (:func:`.settings.builder_settings`
  for the TensorRT the profile names: JetPack 6 → 10.3, weakly typed, FP16 flag
  with the fragile layers constrained to fp32; with the device and profile, as
  the engine description records them);
* ``plugins/``: the plugin sources with their CMake (shipped with vitprune), verbatim;
* ``portable/``: :mod:`vitprune_export.portable` as it is — what ``build.sh``
  (plugin library, then the engine with ``python3 -m portable.trt_build``,
  ``trtexec`` or an installed ``vitprune``) and ``profile.sh`` (vitprune's
  latency protocol, ``python3 -m portable.trt_measure``, results JSON
  ``vitprune.result/1``) run, so the device builds, describes and times the
  engine with the same code as ``vitprune build`` and ``vitprune profile``;
* a README with the exact steps and ``bundle.json``;
* with ``plan_points`` (``vitprune bundle --plan --plan-points N``): ``parts/``, the model's middle block cut into
  the planner's parts at ``N`` token counts (:mod:`.bundle_parts`), and ``plan.sh``, which builds
  and times them on the device beside the bundle's engine and plans the keep counts for a budget
  (``python3 -m portable.trt_curves``, then ``python3 -m portable.plan``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import portable
from ..errors import VitPruneError
from ..files import check_output
from ..portable.results import now_iso
from ..record import OnnxArtifact, PruningRecord
from ..resources import plugin_sources_dir
from .bundle_names import check_name
from .profiles import DeviceProfile, load_profile
from .settings import OnnxFacts, builder_settings, expected_tensorrt

BUNDLE_SCHEMA = "vitprune.bundle/1"
PLUGIN_SOURCE_IGNORE = ("build", "build-*", "build_*", "*.so", "*.o", "__pycache__", ".*")
PORTABLE_IGNORE = ("__pycache__", "*.pyc")


@dataclass
class BundleResult:
    path: Path
    files: list[str]
    settings: dict[str, Any]
    plugin_sources: bool


def default_plugins_dir() -> Path:
    """The plugin sources shipped with vitprune."""
    return plugin_sources_dir()


def _cuda_arch(profile: DeviceProfile) -> str:
    arch = profile.device.arch
    return arch[3:] if arch.startswith("sm_") and arch[3:].isdigit() else "native"


#: TensorRT builder flags → trtexec's options
TRTEXEC_PRECISION_FLAGS = {"FP16": "--fp16", "INT8": "--int8", "FP8": "--fp8"}


def _float_parts_fp16(settings) -> bool:
    """The engine's float layers run in fp16: an fp16 build, or a weakly typed Q/DQ build with the FP16 flag."""
    return settings.precision == "fp16" or "FP16" in settings.builder_flags


def _trtexec_flags(settings, precision: str, timing_cache: str | None) -> list[str]:
    """trtexec's flags for ``settings``, one argv word each (``build.sh`` holds them as a bash array)."""
    flags = []
    if settings.strongly_typed:
        flags.append("--stronglyTyped")
    else:  # weakly typed: the builder flags (FP16; INT8/FP8 for a Q/DQ file) as trtexec spells them
        flags += [TRTEXEC_PRECISION_FLAGS[flag] for flag in settings.builder_flags if flag in TRTEXEC_PRECISION_FLAGS]
    for name, (minimum, optimum, maximum) in (settings.shape_profile or {}).items():
        shape = lambda dims: "x".join(str(int(d)) for d in dims)  # noqa: E731
        flags += [
            f"--minShapes={name}:{shape(minimum)}",
            f"--optShapes={name}:{shape(optimum)}",
            f"--maxShapes={name}:{shape(maximum)}",
        ]
    layers = _trtexec_fp32_layers(settings, precision)
    if layers:
        # the same fp32 constraints build_engine.py sets (trtexec matches layer names: a node's last layer)
        flags += ["--precisionConstraints=prefer", "--layerPrecisions=" + ",".join(f"{name}:fp32" for name in layers)]
    flags.append(f"--memPoolSize=workspace:{settings.workspace_bytes // 2**20}M")
    if settings.builder_optimization_level is not None:
        flags.append(f"--builderOptimizationLevel={settings.builder_optimization_level}")
    if timing_cache:
        flags.append(f"--timingCacheFile={timing_cache}")
    return flags


def _trtexec_fp32_layers(settings, precision: str) -> list[str]:
    """The nodes ``--layerPrecisions`` keeps fp32: only a weakly typed build with fp16 float parts constrains layers."""
    if settings.strongly_typed or "PREFER_PRECISION_CONSTRAINTS" not in settings.builder_flags:
        return []
    return [name for name in settings.fp32_layers if name]


def _check_script_names(onnx_path: Path, record: PruningRecord, profile: DeviceProfile, facts, settings) -> None:
    """Refuse, before anything is written, a name the bundle's scripts would hold that is outside its pattern."""
    source = str(onnx_path)
    check_name(onnx_path.name, "file", "the ONNX file name", "rename the file")
    check_name(profile.name, "file", "the profile name", 'give the profile a plain name = "…"')
    for what, value in (("model", record.model), ("method", record.method)):
        check_name(value, "file", f"the record's {what} in {source!r}", "re-export the ONNX with 'vitprune export'")
    fix_nodes = "rename them (onnx-graphsurgeon) or re-export the model with 'vitprune export'"
    for name in settings.shape_profile or {}:
        check_name(name, "tensor", f"input name in {source!r}", fix_nodes)
    for name in _trtexec_fp32_layers(settings, settings.precision):
        check_name(name, "tensor", f"node name in {source!r}", fix_nodes)
    for op in facts.plugin_ops:
        check_name(op, "op", f"custom-domain op type in {source!r}", fix_nodes)


def _result_name_parts(record: PruningRecord, precision: str) -> tuple[str, str]:
    """File name around the batch, as ``vitprune profile`` names results: ``<record tag>_trt_b`` … ``_fp16``."""
    return f"{record.tag}_trt_b", "" if precision == "fp32" else f"_{precision}"


def bundle(
    onnx_path: str | Path,
    profile: str | Path | DeviceProfile,
    out_dir: str | Path,
    plugins_dir: str | Path | None = None,
    force: bool = False,
    plan_points: int | None = None,
    say=lambda message: None,
) -> BundleResult:
    """Write the bundle folder ``out_dir`` for ``profile``; nothing is left behind on failure.

    ``plan_points``: also ship the block parts at that many token counts and ``plan.sh``."""
    from .. import __version__
    from ..export.fp16 import convert_onnx_to_fp16
    from .bundle_parts import check_plan_request, plan_names, write_parts
    from .bundle_templates import BUILD_SH, PLAN_SH, PROFILE_SH, README, render, render_script

    onnx_path = Path(onnx_path)
    out_dir = Path(out_dir)
    artifact = OnnxArtifact.open(onnx_path)  # the one parse of the file: record, facts and conversion use it
    if artifact.has_external_data:
        raise VitPruneError(f"{str(onnx_path)!r} keeps its weights in an external data file; re-export it as one file")
    profile = profile if isinstance(profile, DeviceProfile) else load_profile(profile)
    if not profile.uses_tensorrt:
        raise VitPruneError(
            f"profile {profile.name!r} uses backend {profile.build.backend!r}: a bundle is for TensorRT devices"
        )
    if out_dir.exists() and not force:
        raise VitPruneError(f"{str(out_dir)!r} already exists; choose another -o or pass --force to replace it")
    if plugins_dir is not None and not Path(plugins_dir).is_dir():
        raise VitPruneError(
            f"--plugins-dir {str(plugins_dir)!r} is not a folder; leave it out to ship the plugin sources of vitprune"
        )
    check_output(out_dir, "--output", folder=True)
    if out_dir.exists():
        _check_replaceable(out_dir)
    plugins_dir = Path(plugins_dir) if plugins_dir else default_plugins_dir()

    record = artifact.record or PruningRecord.from_metadata({}, str(onnx_path))
    if plan_points is not None:
        check_plan_request(record, plan_points, onnx_path)
    facts = OnnxFacts.read(onnx_path, artifact.proto)
    plugin_ops = facts.plugin_ops
    has_plugin_sources = plugins_dir.is_dir() and any(plugins_dir.iterdir())
    if plugin_ops and not (plugins_dir / "CMakeLists.txt").is_file():
        raise VitPruneError(
            f"the ONNX has plugin nodes ({', '.join(plugin_ops)}) but {str(plugins_dir)!r} has no CMakeLists.txt; "
            "the device could not build them"
        )
    flavour, version = expected_tensorrt(profile)
    if plugin_ops and flavour == "tensorrt_rtx":
        raise VitPruneError(
            f"{str(onnx_path)!r} has plugin nodes ({', '.join(plugin_ops)}) and profile {profile.name!r} builds with "
            f"TensorRT for RTX, which has no plugin layers; rewrite them with 'vitprune rewrite {onnx_path} --to standard "
            f"-o {onnx_path.with_name(onnx_path.stem + '_standard.onnx')}' and bundle that, or use a TensorRT 10/11 profile"
        )
    settings = builder_settings(profile, flavour, version, facts.inputs, facts.precision, fp32_layers=facts.fp32_layers)
    settings_data = settings.for_device(profile)
    if settings.timing_cache:
        settings_data["timing_cache"] = "timing.cache"  # inside the bundle, reused across builds there
    _check_script_names(onnx_path, record, profile, facts, settings)
    engine_name = f"{onnx_path.stem}_{profile.name}_{settings.precision}.engine"
    prefix, suffix = _result_name_parts(record, settings.precision)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        onnx_name = onnx_path.name
        onnx_note = "as exported"
        if settings.convert_onnx_to_fp16:
            onnx_name = f"{onnx_path.stem}_fp16.onnx"
            onnx_note = "converted to fp16 for a strongly typed TensorRT; inputs/outputs fp32"
            convert_onnx_to_fp16(onnx_path, staging / onnx_name, plugin_ops, proto=artifact.proto)
        else:
            shutil.copy2(onnx_path, staging / onnx_name)
        (staging / "metadata.json").write_text(json.dumps(record.to_metadata(), indent=2, sort_keys=True) + "\n")
        (staging / "profile.toml").write_text(_named_profile_text(profile))
        (staging / "build_settings.json").write_text(json.dumps(settings_data, indent=2) + "\n")
        shutil.copytree(
            Path(portable.__file__).parent, staging / "portable", ignore=shutil.ignore_patterns(*PORTABLE_IGNORE)
        )
        if has_plugin_sources:
            shutil.copytree(plugins_dir, staging / "plugins", ignore=shutil.ignore_patterns(*PLUGIN_SOURCE_IGNORE))
        else:
            (staging / "plugins").mkdir()

        batch = profile.measure_batch
        plan_batch = _static_batch(facts) or batch
        curves_name, plan_prefix = plan_names(record, plan_batch, settings.precision)
        values = {
            "ONNX": onnx_name,
            "ENGINE": engine_name,
            "CUDA_ARCH": _cuda_arch(profile),
            "PRECISION": settings.precision,
            "NEEDS_PLUGINS": "yes" if plugin_ops else "no",
            "PLUGIN_OPS": ",".join(plugin_ops) or "none",
            "TRTEXEC_FLAGS": _trtexec_flags(settings, settings.precision, settings_data["timing_cache"]),
            "VITPRUNE_PRECISION": "--fp16" if _float_parts_fp16(settings) else "--fp32",
            "DEVICE": profile.name,
            "BATCH": str(batch),
            "MIN_BATCH": str(profile.build.min_batch),
            "MAX_BATCH": str(profile.build.max_batch),
            "WARMUP": str(profile.measure.warmup),
            "ITERATIONS": str(profile.measure.iterations),
            "RESULT_PREFIX": prefix,
            "RESULT_SUFFIX": suffix,
        }
        _write_script(staging / "build.sh", render_script(BUILD_SH, values))
        _write_script(staging / "profile.sh", render_script(PROFILE_SH, values))
        if plan_points is not None:
            write_parts(staging / "parts", record, profile, flavour, version, plan_batch, plan_points, say)
            plan_values = {
                **values,
                "BATCH": str(plan_batch),
                "CURVES_NAME": curves_name,
                "PLAN_PREFIX": plan_prefix,
                "PLAN_ITERATIONS": str(max(profile.measure.iterations // 2, 60)),
                "MODEL": record.model,
                "METHOD": record.method,
            }
            _write_script(staging / "plan.sh", render_script(PLAN_SH, plan_values))
        created = now_iso()
        readme_values = {
            **values,
            "TRTEXEC_FLAGS": " ".join(values["TRTEXEC_FLAGS"]),
            "PLUGIN_OPS": ", ".join(plugin_ops) or "none",
            "MODEL": record.model,
            "METHOD": record.method,
            "DEVICE_NAME": profile.device.name,
            "CREATED": created,
            "SOURCE_ONNX": str(onnx_path),
            "PROFILE": profile.name,
            "ONNX_NOTE": onnx_note,
            "TENSORRT": f"{flavour} {version}",
            "PRECISION_SOURCE": settings.precision_source,
            "KEEP_COUNTS": " ".join(str(n) for n in record.keep_counts) or "unknown",
            "REQUIREMENTS": _requirements(profile, flavour),
            "BUNDLE_NAME": out_dir.name,
            "VITPRUNE_FP16": "--fp16 " if _float_parts_fp16(settings) else "",
            "SETUP": "\n".join(f"   - `{command}`" for command in profile.device.setup)
            or "   - nothing device-specific; close other GPU work",
            "PLAN_STEP": _plan_step(plan_points, plan_batch, profile.name, plan_prefix),
            "NOTES": "\n".join(f"- {note}" for note in [*profile.device.notes, *settings.notes]) or "- none",
        }
        (staging / "README.md").write_text(render(README, readme_values))
        files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
        manifest = {
            "schema": BUNDLE_SCHEMA,
            "created": created,
            "vitprune": __version__,
            "source_onnx": str(onnx_path),
            "onnx": onnx_name,
            "engine": engine_name,
            "profile": profile.to_dict(),
            "builder": settings.to_dict(),
            "onnx_metadata": record.to_metadata(),
            "plugin_ops": plugin_ops,
            "plan_points": plan_points,
            "files": files + ["bundle.json"],
        }
        (staging / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
        staging.chmod(0o755)
        _replace_folder(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BundleResult(
        path=out_dir, files=manifest["files"], settings=settings.to_dict(), plugin_sources=has_plugin_sources
    )


def _static_batch(facts: OnnxFacts) -> int | None:
    """The ONNX's batch when its first input has a static one."""
    dims = facts.inputs[0].dims if facts.inputs else []
    return int(dims[0]) if dims and 0 not in facts.inputs[0].dynamic_axes else None


def _plan_step(points: int | None, batch: int, device: str, prefix: str) -> str:
    if points is None:
        return ""
    return (
        f"6. Plan (this bundle has the block parts, {points} token counts): `./plan.sh --speedup 1.5` or\n"
        f"   `./plan.sh --latency-ms 8` builds the parts in `parts/`, times them and the engine interleaved at batch\n"
        f"   {batch} and writes `results/{device}/plans/{prefix}_x1.5.json` (the curves go to\n"
        f"   `results/{device}/curves/`). Copy them back with step 5; `--schedule` of export, flops, eval and\n"
        "   finetune reads the plan file.\n"
    )


def _named_profile_text(profile: DeviceProfile) -> str:
    """The profile's TOML with ``name = "<name>"`` on top, so results made from the copy keep the device's name."""
    from .profiles import tomllib

    text = Path(profile.source).read_text()
    if "name" in tomllib.loads(text):
        return text
    return f"name = {json.dumps(profile.name)}\n" + text


def _requirements(profile: DeviceProfile, flavour: str) -> str:
    if flavour == "tensorrt_rtx":
        return "an RTX GPU, Python 3.10+, numpy, `pip install tensorrt-rtx`, CUDA toolkit and CMake ≥ 3.18 for the plugins."
    if profile.device.arch == "sm_87" or "jetson" in profile.name:
        return (
            "JetPack 6.x (TensorRT 10.3, CUDA 12): `sudo apt install nvidia-jetpack cmake python3-numpy` provides "
            "TensorRT's Python bindings (python3-libnvinfer), trtexec, nvcc and CMake."
        )
    return "TensorRT ≥ 10.3 with its Python bindings, numpy, the CUDA toolkit (nvcc) and CMake ≥ 3.18."


def _write_script(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def _check_replaceable(folder: Path) -> None:
    """``--force`` replaces a folder only when it holds a bundle: its ``bundle.json`` names :data:`BUNDLE_SCHEMA`.

    Anything else (``engines/``, a results folder, the working directory) is refused before any work.
    """
    marker = folder / "bundle.json"
    schema = None
    if folder.is_dir() and not folder.is_symlink() and marker.is_file() and not marker.is_symlink():
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(marker.read_text())
            schema = data.get("schema") if isinstance(data, dict) else None
    if schema != BUNDLE_SCHEMA:
        raise VitPruneError(
            f"--force replaces only a bundle folder, and {str(folder)!r} holds no bundle.json of 'vitprune bundle'; "
            "choose another -o"
        )


def _replace_folder(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``; an existing ``target`` (``--force``) is moved aside first, then removed."""
    if not target.exists():
        os.rename(staging, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    aside.rmdir()
    os.rename(target, aside)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


__all__ = ["BundleResult", "bundle", "default_plugins_dir"]
