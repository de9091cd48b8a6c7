"""What this machine can do with vitprune: the report of ``vitprune check``.

Python, PyTorch and its CUDA, the GPUs and their compute capability, ONNX Runtime's execution providers,
OpenVINO's version and devices,
which TensorRT is installed (TensorRT or TensorRT for RTX) and its version, nvcc, CMake, TensorRT headers,
the plugin library, and for every device profile whether an engine can be built here. Every probe is lazy
and never raises: a missing piece is reported, with what to install.
"""

from __future__ import annotations

import importlib
import platform
import shutil
import sys
from typing import Any

from ..tensorrt.profiles import RTX_ARCHES


def _version_of(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # not installed, or a broken install: both mean "not usable here"
        return None
    return str(getattr(module, "__version__", "unknown"))


def _torch() -> dict[str, Any]:
    try:
        import torch
    except Exception:
        return {"version": None, "cuda_build": None, "gpus": []}
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            gpus.append({"name": torch.cuda.get_device_name(index), "compute_capability": f"sm_{major}{minor}"})
    return {"version": torch.__version__, "cuda_build": torch.version.cuda, "gpus": gpus}


def _onnxruntime() -> dict[str, Any]:
    try:
        import onnxruntime
    except Exception:
        return {"version": None, "providers": []}
    return {"version": onnxruntime.__version__, "providers": list(onnxruntime.get_available_providers())}


def _openvino() -> dict[str, Any]:
    try:
        import openvino

        return {"version": openvino.__version__, "devices": list(openvino.Core().available_devices)}
    except Exception:  # not installed, or no usable device
        return {"version": None, "devices": []}


def _tensorrt() -> dict[str, Any]:
    return {flavour: _version_of(flavour) for flavour in ("tensorrt", "tensorrt_rtx")}


def _nvcc() -> dict[str, Any]:
    from ..export.ops.plugin_library import find_nvcc
    from ..portable.environment import run_quiet

    path = find_nvcc()
    version = None
    if path is not None:
        output = run_quiet([str(path), "--version"]) or ""
        version = next(
            (line.split("release")[1].split(",")[0].strip() for line in output.splitlines() if "release" in line), None
        )
    return {"path": str(path) if path else None, "version": version}


def _plugins() -> dict[str, Any]:
    from ..export.ops.plugin_library import find_tensorrt_headers
    from ..tensorrt.env import default_plugin_library

    library = default_plugin_library()
    headers = find_tensorrt_headers()
    return {
        "library": str(library) if library else None,
        "tensorrt_headers": str(headers) if headers else None,
        "cmake": shutil.which("cmake"),
    }


def _profile_verdict(profile, tensorrt: dict, gpus: list, ort: dict) -> tuple[bool, str]:
    """Can ``profile``'s engine (or ONNX Runtime session) be built on this machine, and how or why not."""
    backend = profile.build.backend
    if backend == "ort-cpu":
        return (ort["version"] is not None, "ONNX Runtime (no engine)" if ort["version"] else "needs onnxruntime")
    if backend == "trt-rtx":
        if tensorrt["tensorrt_rtx"]:
            return True, "TensorRT for RTX, ahead of time (no GPU)"
        return False, "needs TensorRT for RTX: pip install tensorrt-rtx"
    if tensorrt["tensorrt"] and gpus:
        return True, f"TensorRT {tensorrt['tensorrt']} on {gpus[0]['name']}"
    arches = list(profile.build.compute_capabilities)
    if tensorrt["tensorrt_rtx"] and arches and all(arch.lower() in RTX_ARCHES for arch in arches):
        return True, f"TensorRT for RTX, ahead of time, {', '.join(arches)}"
    if profile.device.tensorrt and not gpus:
        return False, "build on the device (vitprune bundle)"
    if not tensorrt["tensorrt"]:
        return False, "needs TensorRT (pip install tensorrt) + a GPU"
    return False, "needs a CUDA GPU for TensorRT"


def _profiles(tensorrt: dict, gpus: list, ort: dict) -> list[dict[str, Any]]:
    from ..errors import VitPruneError
    from ..tensorrt.profiles import list_profiles, load_profile

    rows = []
    for name in sorted(list_profiles()):
        try:
            profile = load_profile(name)
        except VitPruneError as error:
            rows.append({"profile": name, "can_build": False, "how": str(error)})
            continue
        can_build, how = _profile_verdict(profile, tensorrt, gpus, ort)
        rows.append({"profile": name, "backend": profile.build.backend, "can_build": can_build, "how": how})
    return rows


def check_machine() -> dict[str, Any]:
    """The whole report as plain data (what ``vitprune check --json`` prints)."""
    from .. import __version__

    torch = _torch()
    ort = _onnxruntime()
    tensorrt = _tensorrt()
    return {
        "vitprune": __version__,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "torch": torch,
        "onnx": _version_of("onnx"),
        "onnxruntime": ort,
        "openvino": _openvino(),
        "tensorrt": tensorrt,
        "nvcc": _nvcc(),
        "plugins": _plugins(),
        "profiles": _profiles(tensorrt, torch["gpus"], ort),
    }


def report_lines(report: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(what, finding, fine) rows for the terminal; ``fine`` False marks something missing."""
    torch, ort, trt, nvcc, plugins = (report[key] for key in ("torch", "onnxruntime", "tensorrt", "nvcc", "plugins"))
    gpus = ", ".join(f"{gpu['name']} ({gpu['compute_capability']})" for gpu in torch["gpus"])
    flavours = [
        f"TensorRT {trt['tensorrt']}" if trt["tensorrt"] else "",
        f"TensorRT for RTX {trt['tensorrt_rtx']}" if trt["tensorrt_rtx"] else "",
    ]
    rows = [
        ("vitprune", report["vitprune"], True),
        ("Python", f"{report['python']['version']} ({report['os']})", True),
        (
            "PyTorch",
            f"{torch['version']}, CUDA build {torch['cuda_build'] or 'none (CPU only)'}"
            if torch["version"]
            else "not installed",
            torch["version"] is not None,
        ),
        ("GPU", gpus or "none visible (torch-cuda and trt runs need one)", bool(gpus)),
        ("ONNX", report["onnx"] or "not installed", report["onnx"] is not None),
        (
            "ONNX Runtime",
            f"{ort['version']}: {', '.join(ort['providers'])}" if ort["version"] else "not installed",
            ort["version"] is not None,
        ),
        (
            "OpenVINO",
            f"{report['openvino']['version']}: {', '.join(report['openvino']['devices']) or 'no device'}"
            if report["openvino"]["version"]
            else "not installed (pip install 'vitprune[openvino]'; backends ov-cpu, ov-gpu, ov-npu)",
            report["openvino"]["version"] is not None,
        ),
        (
            "TensorRT",
            " and ".join(f for f in flavours if f) or "not installed (pip install tensorrt or tensorrt-rtx)",
            any(flavours),
        ),
        (
            "nvcc",
            f"{nvcc['version']} ({nvcc['path']})" if nvcc["path"] else "not found (plugins need CUDA)",
            nvcc["path"] is not None,
        ),
        ("CMake", plugins["cmake"] or "not found (vitprune plugins build needs it)", plugins["cmake"] is not None),
        (
            "TensorRT headers",
            plugins["tensorrt_headers"] or "not found (set TENSORRT_ROOT to build the plugins)",
            plugins["tensorrt_headers"] is not None,
        ),
        ("plugin library", plugins["library"] or "not built (vitprune plugins build)", plugins["library"] is not None),
    ]
    for row in report["profiles"]:
        rows.append(
            (
                f"profile {row['profile']}",
                ("yes: " if row["can_build"] else "no: ") + row["how"],
                row["can_build"],
            )
        )
    return rows


__all__ = ["RTX_ARCHES", "check_machine", "report_lines"]
