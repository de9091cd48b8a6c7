"""PyTorch runners: ``torch-cpu`` (host timer) and ``torch-cuda`` (CUDA events).

The model is a patched timm ViT (``apply_method``); it runs under
``torch.inference_mode``. On the GPU the time is taken with a pair of CUDA
events recorded on the current stream around the forward pass and read after
``end.synchronize()``, so asynchronous kernel launches are counted in full.
"""

from __future__ import annotations

import time

import torch

from ...errors import VitPruneError
from ...record import PruningRecord
from .base import Runner


class TorchCpuRunner(Runner):
    """A patched model on the CPU; ``threads`` sets ``torch.set_num_threads``."""

    backend = "torch-cpu"
    device_kind = "cpu"

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.float32

    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        if not isinstance(target, torch.nn.Module):
            raise VitPruneError(
                f"backend {self.backend!r} runs a model spec (--model … --method … --rate …), not a file; "
                "profile ONNX files with --backend ort-cpu and engines with --backend trt"
            )
        if self.threads:
            torch.set_num_threads(self.threads)
        self.loaded = PruningRecord.from_model(target, model_name)
        self.source = f"{self.loaded.model} ({self.loaded.method}, PyTorch)"
        self.input_shape = tuple(self.loaded.input_size)
        self.batch = batch
        self.network = target.eval().to(self._device(), self._dtype())
        self.images = torch.randn((batch, *self.input_shape), device=self._device(), dtype=self._dtype())
        self._output = None
        return self.loaded

    def _forward(self) -> None:
        with torch.inference_mode():
            self._output = self.network(self.images)

    def _run(self) -> float:
        started = time.perf_counter()
        self._forward()
        return (time.perf_counter() - started) * 1e3

    def output(self):
        return None if self._output is None else self._output.float().cpu().numpy()

    def close(self) -> None:
        self.network = self.images = self._output = None


class TorchCudaRunner(TorchCpuRunner):
    """A patched model on the first CUDA GPU, fp32 or fp16, timed with CUDA events."""

    backend = "torch-cuda"
    device_kind = "cuda"
    precisions = ("fp32", "fp16")

    def _device(self) -> torch.device:
        return torch.device("cuda")

    def load(self, target, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        from ...tensorrt.env import require_cuda_gpu

        require_cuda_gpu()
        loaded = super().load(target, batch, model_name)
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        return loaded

    def _run(self) -> float:
        stream = torch.cuda.current_stream()
        self._start.record(stream)
        self._forward()
        self._end.record(stream)
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))

    def close(self) -> None:
        super().close()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
