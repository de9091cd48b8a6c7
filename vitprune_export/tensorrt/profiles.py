"""Device profiles: build and measurement settings for one device, in a TOML file.

A profile (``profiles/<name>.toml``) names the backend, the precision, the
TensorRT builder settings (workspace, optimisation level, min/opt/max batch,
timing cache) and the measurement protocol (warm-up 20 and at least 100 timed
iterations). It is given by name (looked up in ``$VITPRUNE_PROFILES`` folders,
then among the profiles shipped with vitprune, :func:`~vitprune_export.resources.profiles_dir`)
or by path. Validation is strict: an unknown key or
a wrong type is a one-line :class:`~vitprune_export.errors.VitPruneError`
naming the key, with the near misses.

Layout::

    name = "…"          (optional; default: the file name)
    description = "…"
    [device]   name, arch, memory_gb, tensorrt, power_mode, setup = [commands], notes = [lines]
    [build]    backend (trt | trt-rtx | ort-cpu), precision (fp32 | fp16), workspace_mb,
               builder_optimization_level (0–5), min_batch, opt_batch, max_batch,
               timing_cache (path, "" for none), compute_capabilities = ["sm_89", …] (TensorRT for RTX)
    [measure]  batch, warmup, iterations (≥ 100), threads (CPU; 0 = library default)
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VitPruneError, did_you_mean
from ..resources import profiles_dir

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

PROFILES_ENV = "VITPRUNE_PROFILES"
BACKENDS = ("trt", "trt-rtx", "ort-cpu")
TENSORRT_BACKENDS = ("trt", "trt-rtx")
PRECISIONS = ("fp32", "fp16")
MIN_ITERATIONS = 100
#: TensorRT for RTX builds for these GPU architectures (Turing to Blackwell consumer parts; no Hopper, no Orin)
RTX_ARCHES = ("sm_75", "sm_80", "sm_86", "sm_89", "sm_120")

_ARCH_PATTERN = re.compile(r"^sm_\d{2,3}$")


@dataclass(frozen=True)
class DeviceInfo:
    name: str = "unknown device"
    arch: str = ""
    memory_gb: float | None = None
    tensorrt: str = ""
    power_mode: str = ""
    setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildSettings:
    backend: str = "trt"
    precision: str = "fp16"
    workspace_mb: int = 1024
    builder_optimization_level: int = 3
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 1
    timing_cache: str = ""
    compute_capabilities: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MeasureSettings:
    batch: int | None = None  # None: the build's opt_batch
    warmup: int = 20
    iterations: int = 200
    threads: int = 0


@dataclass(frozen=True)
class DeviceProfile:
    """One validated device profile."""

    name: str
    source: str  # the file it came from
    description: str = ""
    device: DeviceInfo = field(default_factory=DeviceInfo)
    build: BuildSettings = field(default_factory=BuildSettings)
    measure: MeasureSettings = field(default_factory=MeasureSettings)

    @property
    def uses_tensorrt(self) -> bool:
        return self.build.backend in TENSORRT_BACKENDS

    @property
    def measure_batch(self) -> int:
        return self.measure.batch if self.measure.batch is not None else self.build.opt_batch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# key → (python type(s) accepted, description used in errors)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "": {"name": ((str,), "a string (default: the file name)"), "description": ((str,), "a string")},
    "device": {
        "name": ((str,), "a string"),
        "arch": ((str,), "a string such as 'sm_87'"),
        "memory_gb": ((int, float), "a number"),
        "tensorrt": ((str,), "a version string such as '10.3'"),
        "power_mode": ((str,), "a string"),
        "setup": ((list,), "a list of shell commands"),
        "notes": ((list, str), "a list of strings"),
    },
    "build": {
        "backend": ((str,), f"one of {', '.join(BACKENDS)}"),
        "precision": ((str,), f"one of {', '.join(PRECISIONS)}"),
        "workspace_mb": ((int,), "an integer (MiB)"),
        "builder_optimization_level": ((int,), "an integer 0–5"),
        "min_batch": ((int,), "a positive integer"),
        "opt_batch": ((int,), "a positive integer"),
        "max_batch": ((int,), "a positive integer"),
        "timing_cache": ((str,), 'a path ("" for none)'),
        "compute_capabilities": ((list,), 'a list such as ["sm_89"]'),
    },
    "measure": {
        "batch": ((int,), "a positive integer"),
        "warmup": ((int,), "an integer ≥ 0"),
        "iterations": ((int,), f"an integer ≥ {MIN_ITERATIONS}"),
        "threads": ((int,), "an integer ≥ 0"),
    },
}


def profile_dirs() -> list[Path]:
    """Folders searched for ``<name>.toml``: ``$VITPRUNE_PROFILES`` (os.pathsep-separated), then the shipped ones."""
    folders = [Path(p) for p in os.environ.get(PROFILES_ENV, "").split(os.pathsep) if p]
    folders.append(profiles_dir())
    return folders


def list_profiles() -> dict[str, Path]:
    """Profile names → files; an earlier folder wins."""
    found: dict[str, Path] = {}
    for folder in profile_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A path when it looks like one (exists, ends in .toml, or has a folder), else a name in :func:`profile_dirs`."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate
    if text.endswith(".toml") or os.sep in text or "/" in text:
        raise VitPruneError(f"profile file {text!r} does not exist; give a path to a .toml file or a profile name")
    known = list_profiles()
    if text in known:
        return known[text]
    names = sorted(known)
    raise VitPruneError(
        f"unknown device profile {text!r}{did_you_mean(text, names)}; known: {', '.join(names) or 'none'} "
        f"(or give a path to a .toml file)"
    )


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load and validate a profile given by name or path."""
    path = resolve_profile_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise VitPruneError(f"profile {str(path)!r} is not valid TOML: {error}") from None
    except OSError as error:
        raise VitPruneError(f"cannot read profile {str(path)!r}: {error.strerror}") from None
    return profile_from_dict(data, name=path.stem, source=str(path))


def profile_from_dict(data: dict[str, Any], name: str, source: str = "<dict>") -> DeviceProfile:
    """Validate a parsed profile (as :func:`tomllib.loads` returns it)."""
    where = f"profile {name!r}"
    top = {key: value for key, value in data.items() if not isinstance(value, dict)}
    sections = {key: value for key, value in data.items() if isinstance(value, dict)}
    for key in sections:
        if key not in _SCHEMA or key == "":
            choices = [s for s in _SCHEMA if s]
            raise VitPruneError(
                f"{where}: unknown section [{key}]{did_you_mean(key, choices)}; sections: {', '.join(choices)}"
            )
    values = {"": _check_section(where, "", top)}
    for section in ("device", "build", "measure"):
        values[section] = _check_section(where, section, sections.get(section, {}))

    device = DeviceInfo(**_as_string_lists(values["device"]))
    build = BuildSettings(**values["build"])
    measure = MeasureSettings(**values["measure"])
    _check_values(where, device, build, measure)
    return DeviceProfile(
        name=values[""].get("name", name),
        source=source,
        description=values[""].get("description", ""),
        device=device,
        build=build,
        measure=measure,
    )


def _check_section(where: str, section: str, table: dict[str, Any]) -> dict[str, Any]:
    schema = _SCHEMA[section]
    checked = {}
    for key, value in table.items():
        dotted = f"{section}.{key}" if section else key
        if key not in schema:
            raise VitPruneError(
                f"{where}: unknown key {dotted!r}{did_you_mean(key, schema)}; "
                f"[{section or 'top level'}] accepts {', '.join(schema)}"
            )
        types, expected = schema[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise VitPruneError(f"{where}: {dotted!r} must be {expected}, got {type(value).__name__} {value!r}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise VitPruneError(f"{where}: {dotted!r} must be a list of strings, got {value!r}")
        checked[key] = value
    return checked


def _as_string_lists(device: dict[str, Any]) -> dict[str, Any]:
    if isinstance(device.get("notes"), str):
        device = {**device, "notes": [device["notes"]]}
    return device


def _check_values(where: str, device: DeviceInfo, build: BuildSettings, measure: MeasureSettings) -> None:
    def bad(key: str, expected: str, value: Any) -> VitPruneError:
        return VitPruneError(f"{where}: {key!r} must be {expected}, got {value!r}")

    if build.backend not in BACKENDS:
        raise bad(
            "build.backend", f"one of {', '.join(BACKENDS)}{did_you_mean(build.backend, BACKENDS)}", build.backend
        )
    if build.precision not in PRECISIONS:
        raise bad("build.precision", f"one of {', '.join(PRECISIONS)}", build.precision)
    if build.workspace_mb < 1:
        raise bad("build.workspace_mb", "a positive integer (MiB)", build.workspace_mb)
    if not 0 <= build.builder_optimization_level <= 5:
        raise bad("build.builder_optimization_level", "an integer 0–5", build.builder_optimization_level)
    for key in ("min_batch", "opt_batch", "max_batch"):
        if getattr(build, key) < 1:
            raise bad(f"build.{key}", "a positive integer", getattr(build, key))
    if not build.min_batch <= build.opt_batch <= build.max_batch:
        raise VitPruneError(
            f"{where}: batches must satisfy min_batch ≤ opt_batch ≤ max_batch, got "
            f"{build.min_batch} / {build.opt_batch} / {build.max_batch}"
        )
    for capability in build.compute_capabilities:
        if not _ARCH_PATTERN.match(capability) and capability != "current":
            raise bad(
                "build.compute_capabilities", "a list of 'sm_XY' entries or 'current'", build.compute_capabilities
            )
    if measure.batch is not None and not build.min_batch <= measure.batch <= build.max_batch:
        raise bad(
            "measure.batch",
            f"between build.min_batch and build.max_batch ({build.min_batch}–{build.max_batch})",
            measure.batch,
        )
    if measure.warmup < 0:
        raise bad("measure.warmup", "an integer ≥ 0", measure.warmup)
    if measure.iterations < MIN_ITERATIONS:
        raise bad("measure.iterations", f"an integer ≥ {MIN_ITERATIONS} (the measurement protocol)", measure.iterations)
    if measure.threads < 0:
        raise bad("measure.threads", "an integer ≥ 0", measure.threads)
    if device.memory_gb is not None and device.memory_gb <= 0:
        raise bad("device.memory_gb", "a positive number", device.memory_gb)


__all__ = [
    "BACKENDS",
    "BuildSettings",
    "DeviceInfo",
    "DeviceProfile",
    "MeasureSettings",
    "list_profiles",
    "load_profile",
    "profile_from_dict",
    "profile_dirs",
    "resolve_profile_path",
]
