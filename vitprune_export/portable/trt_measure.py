"""Measure a TensorRT engine's latency and write a ``vitprune.result/1`` JSON.

Portable (standard library, numpy, TensorRT; the CUDA runtime through
ctypes): a device bundle ships this folder, and its ``profile.sh`` runs this module. Same protocol as ``vitprune profile`` (VPA paper §4.1):
``warm-up`` untimed queries (default 20), then ``iterations`` (≥ 100) timed
ones, each between two CUDA events on one stream around ``execute_async_v3``.
The statistics (:mod:`.stats`), the result (:mod:`.results`) and the
environment (:mod:`.environment`: device, L4T, nvpmodel power mode, GPU clock;
plus TensorRT/CUDA versions) are the ones ``vitprune profile`` writes.

Command line (in a bundle)::

    python3 -m portable.trt_measure --engine model.engine --metadata metadata.json \
        --device jetson-orin-nano --precision fp16 --output results/x.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cuda import CudaError, CudaRuntime
from .environment import describe_machine
from .files import atomic_write_text
from .results import latency_result
from .stats import latency_stats
from .trt_build import BuildError, import_flavour

__all__ = ["MeasureError", "environment", "latency_result", "latency_stats", "main", "time_engine"]


class MeasureError(Exception):
    """The engine could not be timed; the message says why and what to do."""


def time_engine(
    trt, engine_path: str, batch: int, warmup: int, iterations: int, plugins: str | None = None
) -> tuple[list, dict]:
    """Deserialise the engine, bind random inputs of ``batch`` images, return (timed samples in ms, info)."""
    import numpy as np

    logger = trt.Logger(trt.Logger.WARNING)
    if plugins and trt.get_plugin_registry().load_library(str(Path(plugins).resolve())) is None:
        raise MeasureError(f"TensorRT could not load plugin library {plugins!r}")
    engine = trt.Runtime(logger).deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise MeasureError(
            f"TensorRT could not deserialise {engine_path!r}: built on another TensorRT/GPU, or plugins not loaded"
        )
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


def environment(trt, cuda_info: dict) -> dict:
    """The machine (:func:`.environment.describe_machine`), TensorRT's version and the GPU as CUDA sees it."""
    return {**describe_machine(), "libraries": {trt.__name__: trt.__version__}, "gpu": cuda_info}


def main(argv: list | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time a TensorRT engine; write a vitprune.result/1 JSON.")
    parser.add_argument("--engine", required=True)
    parser.add_argument("--metadata", required=True, help="metadata.json of the ONNX the engine was built from")
    parser.add_argument("--device", required=True, help="device name for the results, e.g. jetson-orin-nano")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8", "fp8"), required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warm-up", "--warmup", dest="warmup", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--plugins", default=None)
    args = parser.parse_args(argv)
    if args.iterations < 100 or args.warmup < 0 or args.batch < 1:
        print("error: the protocol needs --iterations ≥ 100, --warm-up ≥ 0, --batch ≥ 1", file=sys.stderr)
        return 2
    try:
        trt = import_flavour()
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        metadata = json.loads(Path(args.metadata).read_text())
        samples, cuda_info = time_engine(trt, args.engine, args.batch, args.warmup, args.iterations, args.plugins)
        result = latency_result(
            metadata,
            samples,
            args.batch,
            args.warmup,
            args.device,
            args.precision,
            environment(trt, cuda_info),
            str(args.engine),
        )
    except (MeasureError, CudaError, OSError, json.JSONDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = atomic_write_text(args.output, json.dumps(result, indent=2) + "\n")
    stats = result["latency_ms"]
    print(
        f"{result['model']} {result['method']} batch {args.batch}: median {stats['median']:.3f} ms, "
        f"p90 {stats['p90']:.3f} ms, {result['images_per_s']:.1f} images/s → {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
