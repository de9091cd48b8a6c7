"""Calling the vitprune CUDA kernels through their C ABI from PyTorch (ctypes), without TensorRT.

Used by ``tests/test_plugin_kernels.py`` and ``benchmarks/plugin_kernels.py``: builds
``libvitprune_kernels.so`` for the visible GPU's architecture with nvcc and wraps each
launcher as a function of CUDA tensors that returns the outputs (same dtype as the input).
"""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import torch

from .plugin_library import find_nvcc, plugin_sources

FLOAT32, FLOAT16 = 0, 1


def build_kernel_library(folder: Path) -> ctypes.CDLL:
    """nvcc all ``*Kernel.cu`` into one shared library for the current GPU; load it."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc is not installed")
    major, minor = torch.cuda.get_device_capability()
    library = folder / "libvitprune_kernels.so"
    kernels = sorted(plugin_sources().glob("*/*Kernel.cu"))
    command = [
        str(nvcc),
        "-O3",
        "-std=c++17",
        "-shared",
        "-Xcompiler",
        "-fPIC",
        f"-arch=sm_{major}{minor}",
        "-I",
        str(plugin_sources()),
        *map(str, kernels),
        "-o",
        str(library),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    lib = ctypes.CDLL(str(library))
    for name in ("vitpruneTopKSelectWorkspaceSize", "vitpruneVPAWorkspaceSize", "vitpruneToMeMergeWorkspaceSize"):
        getattr(lib, name).restype = ctypes.c_size_t
        getattr(lib, name).argtypes = [ctypes.c_int] * 3
    return lib


def _dtype_code(tensor: torch.Tensor) -> int:
    return {torch.float32: FLOAT32, torch.float16: FLOAT16}[tensor.dtype]


def _ptr(tensor: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(tensor.data_ptr())


def _stream() -> ctypes.c_void_p:
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def _check(status: int, name: str) -> None:
    if status != 0:
        raise RuntimeError(f"{name} returned {status}")


class KernelABI:
    """The three launchers as Python functions over contiguous CUDA tensors."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        self._workspace = torch.empty(0, dtype=torch.uint8, device="cuda")

    def workspace(self, size: int) -> torch.Tensor:
        if self._workspace.numel() < size:
            self._workspace = torch.empty(size, dtype=torch.uint8, device="cuda")
        return self._workspace

    def topk_select(self, tokens, scores, num_prefix: int, keep: int):
        batch, n, channels = tokens.shape
        out = tokens.new_empty((batch, num_prefix + keep, channels))
        ws = self.workspace(self.lib.vitpruneTopKSelectWorkspaceSize(batch, n, num_prefix))
        _check(
            self.lib.vitpruneTopKSelect(
                _ptr(tokens),
                _ptr(scores),
                _ptr(out),
                _ptr(ws),
                batch,
                n,
                channels,
                num_prefix,
                keep,
                _dtype_code(tokens),
                _stream(),
            ),
            "vitpruneTopKSelect",
        )
        return out

    def vpa(self, tokens, scores, keys, sizes, num_prefix: int, keep: int, tau: float):
        batch, n, channels = tokens.shape
        out = tokens.new_empty((batch, num_prefix + keep, channels))
        out_sizes = sizes.new_empty((batch, num_prefix + keep))
        ws = self.workspace(self.lib.vitpruneVPAWorkspaceSize(batch, n, num_prefix))
        _check(
            self.lib.vitpruneVPA(
                _ptr(tokens),
                _ptr(scores),
                _ptr(keys),
                _ptr(sizes),
                _ptr(out),
                _ptr(out_sizes),
                _ptr(ws),
                batch,
                n,
                channels,
                keys.shape[2],
                num_prefix,
                keep,
                ctypes.c_float(tau),
                _dtype_code(tokens),
                _stream(),
            ),
            "vitpruneVPA",
        )
        return out, out_sizes

    def tome_merge(self, tokens, keys, sizes, num_prefix: int, merges: int):
        batch, n, channels = tokens.shape
        out = tokens.new_empty((batch, n - merges, channels))
        out_sizes = sizes.new_empty((batch, n - merges))
        ws = self.workspace(self.lib.vitpruneToMeMergeWorkspaceSize(batch, n, num_prefix))
        _check(
            self.lib.vitpruneToMeMerge(
                _ptr(tokens),
                _ptr(keys),
                _ptr(sizes),
                _ptr(out),
                _ptr(out_sizes),
                _ptr(ws),
                batch,
                n,
                channels,
                keys.shape[2],
                num_prefix,
                merges,
                _dtype_code(tokens),
                _stream(),
            ),
            "vitpruneToMeMerge",
        )
        return out, out_sizes
