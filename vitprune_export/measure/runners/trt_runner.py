"""``trt``: a serialized TensorRT engine, timed with CUDA events.

The plugin library (``libvitprune_plugins.so``) is loaded before the engine is
deserialised so the plugin creators are registered. Device buffers are torch
CUDA tensors whose addresses go to ``IExecutionContext.set_tensor_address``;
one ``execute_async_v3`` per query on a torch stream, between two CUDA events
(no pycuda / cuda-python needed). A dynamic batch axis takes ``batch``.
The engine's metadata (model, method, schedule, MACs, precision, device
profile, plugin library) is read from the engine description beside it
(``x.engine.json``, :mod:`...portable.engine_description`, written by
``vitprune build`` and a bundle's ``build_engine.py``), when there is one.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import VitPruneError
from ...record import PruningRecord
from .base import Runner


def engine_description(path: Path) -> dict:
    """The JSON written beside an engine (``x.engine.json``, schema ``vitprune.engine/…``), or {} when there is none."""
    from ...portable.engine_description import EngineDescriptionError, read_engine_description

    try:
        return read_engine_description(path)
    except EngineDescriptionError as error:
        raise VitPruneError(str(error)) from None


def _torch_dtype(trt, dtype):
    import torch

    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int32: torch.int32,
        trt.int8: torch.int8,
        trt.bool: torch.bool,
    }
    for name, torch_dtype in (("int64", torch.int64), ("bfloat16", torch.bfloat16), ("uint8", torch.uint8)):
        if hasattr(trt, name):
            table[getattr(trt, name)] = torch_dtype
    if dtype not in table:
        raise VitPruneError(f"engine tensor type {dtype} is not supported by the trt runner")
    return table[dtype]


def _existing(path) -> Path | None:
    return Path(path) if path and Path(path).is_file() else None


class TensorRTRunner(Runner):
    backend = "trt"
    device_kind = "cuda"
    precisions = ("fp32", "fp16", "int8", "fp8")

    def __init__(self, threads: int | None = None, precision: str = "fp32", plugin_library: str | Path | None = None):
        super().__init__(threads, precision)
        self.plugin_library = plugin_library

    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        import torch

        from ...tensorrt.env import default_plugin_library, import_tensorrt, load_plugin_library, require_cuda_gpu

        path = Path(target) if isinstance(target, (str, Path)) else None
        if path is None:
            raise VitPruneError("backend 'trt' runs an engine file; build one with 'vitprune build'")
        if not path.is_file():
            raise VitPruneError(f"engine {str(path)!r} does not exist; build one with 'vitprune build'")
        trt_lib = import_tensorrt()
        require_cuda_gpu()
        description = engine_description(path)
        library = self.plugin_library or _existing(description.get("plugin_library")) or default_plugin_library()
        if library is not None:
            load_plugin_library(library, trt_lib)
        trt = trt_lib.module
        self.trt = trt_lib
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise VitPruneError(
                f"TensorRT could not deserialise {str(path)!r}: built with another TensorRT version or GPU, "
                "or its plugins are not loaded (pass --plugins PATH)"
            )
        self.context = self.engine.create_execution_context()
        self.loaded = PruningRecord.from_metadata(description.get("onnx_metadata") or {}, str(path))
        self.source = str(path)
        if description.get("precision") in self.precisions:
            self.precision = description["precision"]  # what the engine was built with, not a flag
        self.suggested_device = description.get("device")  # the device profile it was built for
        if model_name:
            self.loaded = self.loaded.replace(model=model_name)
        self.batch = batch
        self.buffers: dict[str, torch.Tensor] = {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for name in inputs:
            shape = list(self.engine.get_tensor_shape(name))
            if shape[0] == -1:
                shape[0] = batch
            elif shape[0] != batch:
                raise VitPruneError(f"engine {str(path)!r} has a static batch of {shape[0]}; pass --batch {shape[0]}")
            if any(d < 0 for d in shape):
                raise VitPruneError(f"engine input {name!r} has dynamic axes {shape} besides the batch")
            self.context.set_input_shape(name, shape)
            dtype = _torch_dtype(trt, self.engine.get_tensor_dtype(name))
            self.buffers[name] = torch.randn(shape, device="cuda").to(dtype)
            self.input_shape = tuple(shape[1:])
        for name in names:
            if name in self.buffers:
                continue
            shape = tuple(self.context.get_tensor_shape(name))
            self.buffers[name] = torch.empty(
                shape, device="cuda", dtype=_torch_dtype(trt, self.engine.get_tensor_dtype(name))
            )
        for name, tensor in self.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self.outputs = [n for n in names if n not in inputs]
        self.stream = torch.cuda.Stream()
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        return self.loaded

    def _run(self) -> float:
        self._start.record(self.stream)
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise VitPruneError("TensorRT execute_async_v3 failed; see the TensorRT log above")
        self._end.record(self.stream)
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))

    def output(self):
        return self.buffers[self.outputs[0]].float().cpu().numpy() if self.outputs else None

    def close(self) -> None:
        self.context = self.engine = None
        self.buffers = {}
