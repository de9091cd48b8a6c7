"""The CUDA runtime and driver through ctypes: enough to time an engine and name the GPU (no pycuda, no torch).

Standard library only; ``libcudart`` and ``libcuda`` are looked up where CUDA
and JetPack install them.
"""

from __future__ import annotations

import ctypes

HOST_TO_DEVICE = 1


class CudaError(RuntimeError):
    """A CUDA call failed or the runtime is missing; the message says which and what to do."""


class CudaRuntime:
    """The few CUDA runtime calls a latency loop needs, through ctypes (no pycuda, no torch)."""

    NAMES = (
        "libcudart.so",
        "libcudart.so.13",
        "libcudart.so.12",
        "libcudart.so.11.0",
        "/usr/local/cuda/lib64/libcudart.so",
        "/usr/local/cuda/targets/aarch64-linux/lib/libcudart.so",
    )

    def __init__(self) -> None:
        self.lib = None
        for name in self.NAMES:
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self.lib is None:
            raise CudaError(
                "the CUDA runtime (libcudart.so) was not found; add /usr/local/cuda/lib64 to LD_LIBRARY_PATH"
            )
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise CudaError(f"{what} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return int(pointer.value)

    def free(self, pointer: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(pointer))

    def upload(self, pointer: int, array) -> None:
        self.check(
            self.lib.cudaMemcpy(
                ctypes.c_void_p(pointer),
                array.ctypes.data_as(ctypes.c_void_p),
                ctypes.c_size_t(array.nbytes),
                HOST_TO_DEVICE,
            ),
            "cudaMemcpy",
        )

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(handle)), "cudaStreamCreate")
        return int(handle.value or 0)

    def event(self) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self.check(self.lib.cudaEventCreate(ctypes.byref(handle)), "cudaEventCreate")
        return handle

    def record(self, event, stream: int) -> None:
        self.check(self.lib.cudaEventRecord(event, ctypes.c_void_p(stream)), "cudaEventRecord")

    def elapsed_ms(self, start, end) -> float:
        self.check(self.lib.cudaEventSynchronize(end), "cudaEventSynchronize")
        milliseconds = ctypes.c_float()
        self.check(self.lib.cudaEventElapsedTime(ctypes.byref(milliseconds), start, end), "cudaEventElapsedTime")
        return float(milliseconds.value)

    def versions(self) -> dict:
        runtime, driver = ctypes.c_int(), ctypes.c_int()
        self.lib.cudaRuntimeGetVersion(ctypes.byref(runtime))
        self.lib.cudaDriverGetVersion(ctypes.byref(driver))
        return {"cuda_runtime": _cuda_version(runtime.value), "cuda_driver": _cuda_version(driver.value)}

    def device_name(self) -> str | None:
        properties = ctypes.create_string_buffer(8192)  # cudaDeviceProp starts with char name[256]
        for symbol in ("cudaGetDeviceProperties_v2", "cudaGetDeviceProperties"):
            function = getattr(self.lib, symbol, None)
            if function is not None and function(properties, 0) == 0:
                return properties.raw[:256].split(b"\0", 1)[0].decode(errors="replace")
        return None


def _cuda_version(value: int) -> str:
    return f"{value // 1000}.{(value % 1000) // 10}" if value else "unknown"


def gpu_name() -> str | None:
    """The first CUDA device's name through the driver API (no torch needed), or None."""
    for library in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(library)
        except OSError:
            continue
        if cuda.cuInit(0) != 0:
            return None
        device = ctypes.c_int()
        if cuda.cuDeviceGet(ctypes.byref(device), 0) != 0:
            return None
        name = ctypes.create_string_buffer(256)
        if cuda.cuDeviceGetName(name, 256, device) != 0:
            return None
        return name.value.decode(errors="replace")
    return None
