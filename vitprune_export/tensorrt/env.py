"""Lazy access to TensorRT, its plugin registry and the GPU.

Nothing here imports TensorRT at module load. Every function that needs it calls
:func:`import_tensorrt`, which raises a one-line
:class:`~vitprune_export.errors.MissingDependencyError` saying how to install it
when it is absent. Two flavours are recognised behind one name:

* ``tensorrt`` — TensorRT 10.x (JetPack 6 ships 10.3; weakly typed, builder
  precision flags) and 11.x (strongly typed networks only);
* ``tensorrt_rtx`` — TensorRT for RTX (``pip install tensorrt-rtx``), RTX GPUs
  of compute capability 7.5/8.6/8.9/12.0, strongly typed, JIT-compiled kernels.
"""

from __future__ import annotations

import ctypes
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import MissingDependencyError, VitPruneError

INSTALL_HINT = (
    "install TensorRT: on a desktop 'pip install tensorrt' (NVIDIA's index) or 'pip install tensorrt-rtx' "
    "for RTX GPUs; on Jetson it ships with JetPack 6 (python3-libnvinfer)"
)


@dataclass(frozen=True)
class TensorRT:
    """The imported TensorRT module and what kind it is."""

    module: ModuleType
    flavour: str  # "tensorrt" | "tensorrt_rtx"
    version: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def strongly_typed_only(self) -> bool:
        """TensorRT 11 and TensorRT for RTX build strongly typed networks only."""
        return self.flavour == "tensorrt_rtx" or self.major >= 11


def import_tensorrt(prefer: str | None = None) -> TensorRT:
    """Import TensorRT (``prefer`` = ``tensorrt`` or ``tensorrt_rtx``), or raise a one-line error."""
    candidates = [prefer] if prefer else ["tensorrt", "tensorrt_rtx"]
    errors = []
    for name in candidates:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            errors.append(f"{name}: {error}")
            continue
        except Exception as error:  # a broken install (missing libnvinfer …)
            errors.append(f"{name}: {type(error).__name__}: {error}")
            continue
        return TensorRT(module=module, flavour=name, version=str(getattr(module, "__version__", "0")))
    tried = " or ".join(repr(name) for name in candidates)
    first_lines = "; ".join(error.splitlines()[0] for error in errors if "No module named" not in error)
    detail = f"no module {tried} could be imported" + (f": {first_lines}" if first_lines else "")
    raise MissingDependencyError(f"TensorRT is not available ({detail}); {INSTALL_HINT}")


def tensorrt_available() -> bool:
    try:
        import_tensorrt()
    except MissingDependencyError:
        return False
    return True


def cuda_gpu_name() -> str | None:
    """Name of the first CUDA GPU PyTorch sees, or None."""
    import torch

    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def require_cuda_gpu() -> str:
    name = cuda_gpu_name()
    if name is None:
        raise MissingDependencyError(
            "no CUDA GPU is visible (torch.cuda.is_available() is False); run this on a machine with an NVIDIA GPU "
            "and a CUDA build of PyTorch"
        )
    return name


_loaded_plugin_libraries: dict[str, ctypes.CDLL] = {}


def load_plugin_library(path: str | Path, trt: TensorRT | None = None) -> None:
    """Load ``libvitprune_plugins.so`` so its creators register with TensorRT's plugin registry.

    The library exports ``setLoggerFinder`` and ``getCreators`` (one ``IPluginCreatorV3One``
    per op); TensorRT's ``IPluginRegistry.load_library`` (TensorRT ≥ 10.0) calls them. The
    creators of every op in :data:`~vitprune_export.export.ops.spec.OPS` (at its version and
    namespace) must then be in the registry, or this raises.
    """
    path = Path(path)
    if not path.is_file():
        raise VitPruneError(f"plugin library {str(path)!r} does not exist; build it with 'vitprune plugins build'")
    key = str(path.resolve())
    if key in _loaded_plugin_libraries:
        return
    trt = trt or import_tensorrt()
    registry = trt.module.get_plugin_registry()
    try:
        handle = registry.load_library(key)
    except Exception as error:
        raise VitPruneError(
            f"TensorRT could not load plugin library {str(path)!r} ({error}); rebuild it with 'vitprune plugins build'"
        ) from None
    if handle is None:
        raise VitPruneError(
            f"TensorRT could not load plugin library {str(path)!r} (not a library, or built for another TensorRT "
            "or CUDA); rebuild it here with 'vitprune plugins build'"
        )
    missing = missing_plugin_creators(trt)
    if missing:
        raise VitPruneError(
            f"{str(path)!r} loaded but TensorRT's registry lacks {', '.join(missing)}; rebuild it with 'vitprune plugins build'"
        )
    _loaded_plugin_libraries[key] = handle


def missing_plugin_creators(trt: TensorRT | None = None) -> list[str]:
    """Names of the vitprune plugins (:data:`vitprune_export.export.ops.spec.OPS`, each at its version and
    namespace) with no creator in TensorRT's registry."""
    from ..export.ops.spec import OPS

    trt = trt or import_tensorrt()
    registry = trt.module.get_plugin_registry()
    missing = []
    for name, spec in OPS.items():
        try:
            if hasattr(registry, "get_creator"):  # TensorRT ≥ 10: IPluginCreatorV3One and V2 creators
                creator = registry.get_creator(name, spec.version, spec.namespace)
            else:
                creator = registry.get_plugin_creator(name, spec.version, spec.namespace)
        except Exception:
            creator = None
        if creator is None:
            missing.append(name)
    return missing


def default_plugin_library() -> Path | None:
    """``build/plugins/libvitprune_plugins.so`` under the working directory (where ``vitprune plugins build``
    puts it) when it exists."""
    from ..export.ops.plugin_library import DEFAULT_BUILD_DIR, PLUGIN_LIBRARY

    candidate = DEFAULT_BUILD_DIR / PLUGIN_LIBRARY
    return candidate if candidate.is_file() else None
