"""Measure a TensorRT engine's latency and write a ``vitprune.result/1`` JSON.

Standalone (standard library, numpy, TensorRT; the CUDA runtime through
ctypes), copied as ``measure_latency.py`` into a device bundle, where
``profile.sh`` runs it. Same protocol as ``vitprune profile`` (DESIGN.md
"Devices and measurement"; VPA paper §4.1): ``warmup`` untimed queries
(default 20), then ``iterations`` (≥ 100) timed ones, each between two CUDA
events on one stream around ``execute_async_v3``. Reported: median, mean,
p90, p99, std (population), min, max of one query of ``batch`` images in ms,
and ``batch · 1000 / median`` images/s; the environment (device, L4T,
nvpmodel power mode, GPU clock, TensorRT/CUDA versions) travels with them.

Command line (in a bundle)::

    python3 measure_latency.py --engine model.engine --metadata metadata.json \
        --device jetson-orin-nano --precision fp16 --output results/x.json
"""

from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "vitprune.result/1"
HOST_TO_DEVICE = 1


class MeasureError(Exception):
    pass


class CudaRuntime:
    """The few CUDA runtime calls a latency loop needs, through ctypes (no pycuda, no torch)."""

    NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0",
             "/usr/local/cuda/lib64/libcudart.so", "/usr/local/cuda/targets/aarch64-linux/lib/libcudart.so")

    def __init__(self) -> None:
        self.lib = None
        for name in self.NAMES:
            try:
                self.lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if self.lib is None:
            raise MeasureError("the CUDA runtime (libcudart.so) was not found; add /usr/local/cuda/lib64 to LD_LIBRARY_PATH")
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p

    def check(self, status: int, what: str) -> None:
        if status != 0:
            raise MeasureError(f"{what} failed: {self.lib.cudaGetErrorString(status).decode()}")

    def malloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(max(nbytes, 1))), "cudaMalloc")
        return int(pointer.value)

    def free(self, pointer: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(pointer))

    def upload(self, pointer: int, array) -> None:
        self.check(self.lib.cudaMemcpy(ctypes.c_void_p(pointer), array.ctypes.data_as(ctypes.c_void_p),
                                       ctypes.c_size_t(array.nbytes), HOST_TO_DEVICE), "cudaMemcpy")

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


def latency_stats(samples_ms) -> dict:
    """Median, mean, p90, p99, std (population), min, max — as ``vitprune profile`` reports them."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    return {
        "median": float(np.median(values)), "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)), "p99": float(np.percentile(values, 99)),
        "std": float(values.std()), "min": float(values.min()), "max": float(values.max()),
    }


def time_engine(trt, engine_path: str, batch: int, warmup: int, iterations: int, plugins: str | None = None) -> tuple[list, dict]:
    """Deserialise the engine, bind random inputs of ``batch`` images, return (timed samples in ms, info)."""
    import numpy as np

    logger = trt.Logger(trt.Logger.WARNING)
    if plugins:
        if trt.get_plugin_registry().load_library(str(Path(plugins).resolve())) is None:
            raise MeasureError(f"TensorRT could not load plugin library {plugins!r}")
    engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise MeasureError(f"TensorRT could not deserialise {engine_path!r}: built on another TensorRT/GPU, or plugins not loaded")
    context = engine.create_execution_context()
    cuda = CudaRuntime()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    pointers = []
    for name in names:
        if engine.get_tensor_mode(name) != trt.TensorIOMode.INPUT:
            continue
        shape = list(engine.get_tensor_shape(name))
        if shape[0] == -1:
            shape[0] = batch
        elif shape[0] != batch:
            raise MeasureError(f"the engine has a static batch of {shape[0]}; pass --batch {shape[0]}")
        context.set_input_shape(name, shape)
        array = np.random.default_rng(0).standard_normal(shape).astype(trt.nptype(engine.get_tensor_dtype(name)))
        pointer = cuda.malloc(array.nbytes)
        cuda.upload(pointer, array)
        context.set_tensor_address(name, pointer)
        pointers.append(pointer)
    for name in names:
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            continue
        shape = tuple(context.get_tensor_shape(name))
        size = int(np.prod(shape)) * np.dtype(trt.nptype(engine.get_tensor_dtype(name))).itemsize
        pointer = cuda.malloc(size)
        context.set_tensor_address(name, pointer)
        pointers.append(pointer)
    stream = cuda.stream()
    start, end = cuda.event(), cuda.event()
    samples = []
    try:
        for index in range(warmup + iterations):
            cuda.record(start, stream)
            if not context.execute_async_v3(stream):
                raise MeasureError("execute_async_v3 failed; see the TensorRT log above")
            cuda.record(end, stream)
            elapsed = cuda.elapsed_ms(start, end)
            if index >= warmup:
                samples.append(elapsed)
    finally:
        for pointer in pointers:
            cuda.free(pointer)
    info = {"gpu": cuda.device_name(), **cuda.versions()}
    return samples, info


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip().rstrip("\x00")
    except OSError:
        return None


def _quiet(command: list) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment(trt, cuda_info: dict) -> dict:
    """Device, OS, versions and (on a Jetson) L4T release, nvpmodel mode and GPU clock."""
    found = {
        "hostname": platform.node(), "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
        "python": platform.python_version(), "libraries": {trt.__name__: trt.__version__}, "gpu": cuda_info,
    }
    model = _read("/proc/device-tree/model")
    release = _read("/etc/nv_tegra_release")
    if model or release:
        jetson = {"model": model, "l4t": release.splitlines()[0] if release else None}
        power = _quiet(["nvpmodel", "-q"])
        if power:
            jetson["power_mode"] = " ".join(line.strip() for line in power.splitlines() if line.strip())
        for path in ("/sys/devices/gpu.0/devfreq/17000000.gpu/cur_freq",
                     "/sys/devices/platform/17000000.gpu/devfreq/17000000.gpu/cur_freq",
                     "/sys/devices/17000000.gpu/devfreq/17000000.gpu/cur_freq"):
            frequency = _read(path)
            if frequency:
                jetson["gpu_freq_hz"] = frequency
                break
        found["jetson"] = jetson
    return found


def uniform_rate(schedule: dict | None):
    rates = (schedule or {}).get("rates")
    if not rates:
        return None
    return float(rates[0]) if all(float(r) == float(rates[0]) for r in rates) else None


def latency_result(metadata: dict, samples: list, batch: int, warmup: int, device: str, precision: str,
                   env: dict, source: str) -> dict:
    stats = latency_stats(samples)
    return {
        "schema": SCHEMA, "kind": "latency",
        "model": str(metadata.get("model", Path(source).stem)), "method": str(metadata.get("method", "unknown")),
        "method_options": dict(metadata.get("method_options") or {}), "rate": uniform_rate(metadata.get("schedule")),
        "keep_counts": [int(n) for n in metadata.get("keep_counts") or []],
        "macs": metadata.get("macs"), "baseline_macs": metadata.get("baseline_macs"),
        "weights": str(metadata.get("weights", "unknown")),
        "device": device, "backend": "trt", "precision": precision, "batch": batch,
        "latency_ms": stats, "images_per_s": batch * 1000.0 / stats["median"] if stats["median"] > 0 else 0.0,
        "warmup": warmup, "iterations": len(samples), "schedule": metadata.get("schedule"),
        "environment": env, "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(), "source": source,
    }


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a TensorRT engine; write a vitprune.result/1 JSON.")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--metadata", required=True, help="metadata.json of the ONNX the engine was built from")
    parser.add_argument("--device", required=True, help="device name for the results, e.g. jetson-orin-nano")
    parser.add_argument("--precision", choices=("fp32", "fp16"), required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--plugins", default=None)
    args = parser.parse_args(argv)
    if args.iterations < 100 or args.warmup < 0 or args.batch < 1:
        print("error: the protocol needs --iterations ≥ 100, --warmup ≥ 0, --batch ≥ 1", file=sys.stderr)
        return 2
    trt, problems = None, []
    for name in ("tensorrt", "tensorrt_rtx"):
        try:
            trt = importlib.import_module(name)
            break
        except Exception as error:  # ImportError or a broken install
            problems.append(f"{name}: {error}")
    if trt is None:
        print(f"error: TensorRT Python bindings are not importable ({'; '.join(problems)}); "
              "on JetPack: sudo apt install python3-libnvinfer", file=sys.stderr)
        return 2
    try:
        metadata = json.loads(Path(args.metadata).read_text())
        samples, cuda_info = time_engine(trt, args.engine, args.batch, args.warmup, args.iterations, args.plugins)
        result = latency_result(metadata, samples, args.batch, args.warmup, args.device, args.precision,
                                environment(trt, cuda_info), str(args.engine))
    except MeasureError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", dir=str(output.parent))
    with os.fdopen(handle, "w") as stream:
        stream.write(json.dumps(result, indent=2) + "\n")
    os.replace(temporary, output)
    stats = result["latency_ms"]
    print(f"{result['model']} {result['method']} batch {args.batch}: median {stats['median']:.3f} ms, "
          f"p90 {stats['p90']:.3f} ms, {result['images_per_s']:.1f} images/s → {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
