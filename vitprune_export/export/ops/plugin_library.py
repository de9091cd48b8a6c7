"""Building ``libvitprune_plugins.so`` (or the kernels-only ``libvitprune_kernels.so``) with CMake.

The sources ship with vitprune (``plugins/`` of the repository, one folder per op,
see ``plugins/README.md``; :func:`~vitprune_export.resources.plugin_sources_dir`)
and are never written to: the build goes to ``build/plugins`` under the working
directory unless ``build_dir`` says otherwise. A full
build needs ``nvcc``, CMake ≥ 3.18 and TensorRT's headers (``NvInferRuntime.h``: under
``--tensorrt-root``/include, ``$TENSORRT_ROOT``, or JetPack 6's
``/usr/include/aarch64-linux-gnu``); ``kernels_only`` needs no TensorRT. Every missing
piece is one clear error before CMake runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...errors import MissingDependencyError, VitPruneError
from ...files import check_output
from ...resources import plugin_sources_dir

DEFAULT_ARCHES = ("87", "89", "90")  # Jetson Orin, Ada (RTX 40xx, L4), Hopper (H100/H200)
SYSTEM_HEADER_DIRS = (
    "/usr/include/aarch64-linux-gnu",  # JetPack 6
    "/usr/include/x86_64-linux-gnu",  # Debian/Ubuntu packages
    "/usr/include",
    "/usr/local/tensorrt/include",
)
HEADER = "NvInferRuntime.h"
#: where ``vitprune plugins build`` puts the library, under the working directory
DEFAULT_BUILD_DIR = Path("build/plugins")
PLUGIN_LIBRARY = "libvitprune_plugins.so"
KERNEL_LIBRARY = "libvitprune_kernels.so"


@dataclass
class PluginBuild:
    library: Path
    build_dir: Path
    arches: tuple[str, ...]
    kernels_only: bool
    tensorrt_include: Path | None
    seconds: float


def plugin_sources() -> Path:
    """The plugin sources shipped with vitprune."""
    return plugin_sources_dir()


def parse_arches(text: str | None) -> tuple[str, ...]:
    """``"87,89,90"`` → ("87", "89", "90"); a clear error for anything that is not an SM number."""
    if text is None:
        return DEFAULT_ARCHES
    arches = tuple(part.strip() for part in text.replace(";", ",").split(",") if part.strip())
    bad = [arch for arch in arches if not re.fullmatch(r"\d{2,3}[af]?", arch)]
    if bad or not arches:
        raise VitPruneError(
            f"--arch takes SM numbers like 87,89,90 (Orin, Ada, Hopper), not {', '.join(bad) or repr(text)}"
        )
    return arches


def find_nvcc() -> Path | None:
    found = shutil.which("nvcc")
    if found:
        return Path(found)
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return Path(root) / "bin" / "nvcc"
    return None


def find_tensorrt_headers(tensorrt_root: str | Path | None = None) -> Path | None:
    """The folder holding ``NvInferRuntime.h``: ``tensorrt_root``[/include], ``$TENSORRT_ROOT``, system folders."""
    candidates: list[Path] = []
    for root in (tensorrt_root,) if tensorrt_root else (os.environ.get("TENSORRT_ROOT"),):
        if root:
            candidates += [Path(root) / "include", Path(root)]
    if tensorrt_root is None:
        candidates += [Path(folder) for folder in SYSTEM_HEADER_DIRS]
    return next((folder for folder in candidates if (folder / HEADER).is_file()), None)


def build_plugin_library(
    build_dir: str | Path | None = None,
    arches: tuple[str, ...] = DEFAULT_ARCHES,
    tensorrt_root: str | Path | None = None,
    kernels_only: bool = False,
    jobs: int | None = None,
    source_dir: str | Path | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> PluginBuild:
    """Configure and build the plugins with CMake; returns where the library is."""
    started = time.perf_counter()
    source = Path(source_dir) if source_dir else plugin_sources()
    if not (source / "CMakeLists.txt").is_file():
        raise VitPruneError(
            f"plugin sources not found in {str(source)!r}; reinstall vitprune or pass the plugins/ folder"
        )
    build = Path(build_dir) if build_dir else DEFAULT_BUILD_DIR
    check_output(build, "--build-dir", folder=True)
    cmake = shutil.which("cmake")
    if cmake is None:
        raise MissingDependencyError(
            "cmake is not installed; install CMake ≥ 3.18 (apt install cmake or pip install cmake)"
        )
    nvcc = find_nvcc()
    if nvcc is None:
        raise MissingDependencyError(
            "nvcc (the CUDA compiler) was not found on PATH, $CUDA_HOME or /usr/local/cuda; install the CUDA toolkit"
        )
    include = None
    if not kernels_only:
        include = find_tensorrt_headers(tensorrt_root)
        if include is None:
            where = f"{tensorrt_root}/include" if tensorrt_root else "$TENSORRT_ROOT, " + ", ".join(SYSTEM_HEADER_DIRS)
            raise MissingDependencyError(
                f"TensorRT headers ({HEADER}) not found in {where}; pass --tensorrt-root PATH to a TensorRT install, "
                "or build only the CUDA kernels with --kernels-only"
            )
    configure = [
        cmake,
        "-S",
        str(source),
        "-B",
        str(build),
        f"-DCMAKE_CUDA_COMPILER={nvcc}",
        f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(arches)}",
        f"-DVITPRUNE_KERNELS_ONLY={'ON' if kernels_only else 'OFF'}",
    ]
    if include is not None:
        configure.append(f"-DTENSORRT_ROOT={include.parent if include.name == 'include' else include}")
        configure.append(f"-DTENSORRT_INCLUDE_DIR={include}")
    compile_all = [cmake, "--build", str(build), "-j", str(jobs or os.cpu_count() or 2)]
    build.mkdir(parents=True, exist_ok=True)
    log_path = build / "vitprune-build.log"
    with open(log_path, "w") as log:
        for stage, command in (
            ("configuring with CMake", configure),
            (f"compiling for sm_{', sm_'.join(arches)}", compile_all),
        ):
            if on_stage:
                on_stage(stage)
            log.write("$ " + " ".join(command) + "\n")
            log.flush()
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, text=True)
            if done.returncode != 0:
                log.flush()
                tail = [line for line in log_path.read_text().splitlines() if "rror" in line][-1:] or ["see the log"]
                raise VitPruneError(f"plugin build failed while {stage}: {tail[0].strip()} (full log: {log_path})")
    library = build / (KERNEL_LIBRARY if kernels_only else PLUGIN_LIBRARY)
    if not library.is_file():
        raise VitPruneError(f"the build finished but {library} is missing (full log: {log_path})")
    return PluginBuild(library, build, tuple(arches), kernels_only, include, time.perf_counter() - started)
