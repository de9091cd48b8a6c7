"""One runner per backend behind one small interface (load, infer, last latency).

| backend | runs | timer |
| --- | --- | --- |
| ``torch-cpu`` | a patched PyTorch model | ``time.perf_counter`` |
| ``torch-cuda`` | a patched PyTorch model on the GPU | CUDA events, stream synchronised |
| ``ort-cpu`` | an ONNX file in ONNX Runtime (CPU EP, ``--threads``) | ``time.perf_counter`` |
| ``ov-cpu`` | an ONNX file in OpenVINO on the CPU (``ov-gpu``, ``ov-npu``: Intel iGPU, NPU) | ``time.perf_counter`` |
| ``trt`` | a TensorRT engine (plugin library loaded) | CUDA events on a torch stream |

``get_runner(name)`` builds one; an unknown name is an error naming the near
misses. Heavy imports (TensorRT, onnxruntime) happen inside the runners.
"""

from __future__ import annotations

import importlib

from ...errors import VitPruneError, did_you_mean
from .base import Runner

# backend name → (module, class); imported on first use
_BACKENDS: dict[str, tuple[str, str]] = {
    "torch-cpu": ("torch_runner", "TorchCpuRunner"),
    "torch-cuda": ("torch_runner", "TorchCudaRunner"),
    "ort-cpu": ("ort_runner", "OrtCpuRunner"),
    "ov-cpu": ("ov_runner", "OpenVinoRunner"),
    "ov-gpu": ("ov_runner", "OpenVinoGpuRunner"),
    "ov-npu": ("ov_runner", "OpenVinoNpuRunner"),
    "trt": ("trt_runner", "TensorRTRunner"),
}

#: backends that run a PyTorch model (a model spec) rather than a file
TORCH_BACKENDS = ("torch-cpu", "torch-cuda")
#: backends that run an exported ONNX file (a model spec is exported first)
ONNX_BACKENDS = ("ort-cpu", "ov-cpu", "ov-gpu", "ov-npu")
#: the OpenVINO backends and the device each compiles for
OPENVINO_BACKENDS = {"ov-cpu": "CPU", "ov-gpu": "GPU", "ov-npu": "NPU"}


def list_backends() -> list[str]:
    return list(_BACKENDS)


def runner_class(name: str) -> type[Runner]:
    try:
        module_name, class_name = _BACKENDS[name]
    except KeyError:
        raise VitPruneError(
            f"unknown backend {name!r}{did_you_mean(name, _BACKENDS)}; choose one of {', '.join(_BACKENDS)}"
        ) from None
    module = importlib.import_module(f".{module_name}", __name__)
    return getattr(module, class_name)


def get_runner(name: str, threads: int | None = None, precision: str = "fp32", **options) -> Runner:
    """A runner for backend ``name`` (``torch-cpu``, ``torch-cuda``, ``ort-cpu``, ``trt``).

    ``options``: backend-specific (``plugin_library`` for ``trt``).
    """
    cls = runner_class(name)
    if precision not in cls.precisions:
        raise VitPruneError(
            f"backend {name!r} measures {', '.join(cls.precisions)}, not {precision!r}"
            + ("; build an fp16 engine and profile it with --backend trt" if name == "ort-cpu" else "")
        )
    return cls(threads=threads, precision=precision, **options)


__all__ = [
    "ONNX_BACKENDS",
    "OPENVINO_BACKENDS",
    "Runner",
    "TORCH_BACKENDS",
    "get_runner",
    "list_backends",
    "runner_class",
]
