"""PyTorch runners: ``torch-cpu`` (host timer) and ``torch-cuda`` (CUDA events).

The model is a patched timm ViT (``apply_method``); it runs under
``torch.inference_mode``. On the GPU the time is taken with a pair of CUDA
events recorded on the current stream around the forward pass and read after
``end.synchronize()``, so asynchronous kernel launches are counted in full.
"""

from __future__ import annotations

import copy
import time

import torch

from ...errors import VitPruneError
from .base import LoadedModel, Runner, uniform_rate


def describe_module(network: torch.nn.Module, model_name: str | None = None, source: str = "") -> LoadedModel:
    """Model, method, schedule and analytic MACs (``flops.count_macs``) of a patched model."""
    from ...export.onnx import input_size_of
    from ...pruning.flops import count_macs
    from ...pruning.models import weights_source
    from ...pruning.patch import apply_method, pruning_info

    info = pruning_info(network)
    method, schedule = info["method"], info["schedule"]
    schedule_dict = schedule.to_dict()
    baseline = apply_method(copy.deepcopy(network), "none")
    name = model_name or _architecture(network)
    return LoadedModel(
        model=name,
        method=method.name,
        method_options=method.knob_values(),
        rate=uniform_rate(schedule_dict),
        keep_counts=list(schedule.tokens_out),
        schedule=schedule_dict,
        macs=count_macs(network).macs,
        baseline_macs=count_macs(baseline).macs,
        weights=weights_source(network),
        input_shape=tuple(input_size_of(network)),
        source=source or f"{name} ({method.name}, PyTorch)",
    )


class TorchCpuRunner(Runner):
    """A patched model on the CPU; ``threads`` sets ``torch.set_num_threads``."""

    backend = "torch-cpu"
    device_kind = "cpu"

    def _device(self) -> torch.device:
        return torch.device("cpu")

    def _dtype(self) -> torch.dtype:
        return torch.float16 if self.precision == "fp16" else torch.float32

    def load(self, target, batch: int = 1, model_name: str | None = None) -> LoadedModel:
        if not isinstance(target, torch.nn.Module):
            raise VitPruneError(
                f"backend {self.backend!r} runs a model spec (--model … --method … --rate …), not a file; "
                "profile ONNX files with --backend ort-cpu and engines with --backend trt"
            )
        if self.threads:
            torch.set_num_threads(self.threads)
        self.loaded = describe_module(target, model_name)
        self.batch = batch
        self.network = target.eval().to(self._device(), self._dtype())
        self.images = torch.randn((batch, *self.loaded.input_shape), device=self._device(), dtype=self._dtype())
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

    def load(self, target, batch: int = 1, model_name: str | None = None) -> LoadedModel:
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


def _architecture(network: torch.nn.Module) -> str:
    """timm's model name from the pretrained config, else the (unpatched) class name."""
    for attr in ("pretrained_cfg", "default_cfg"):
        cfg = getattr(network, attr, None)
        if isinstance(cfg, dict) and cfg.get("architecture"):
            return str(cfg["architecture"])
    original = getattr(network, "_vitprune_original_class", type(network))
    return original.__name__


def macs_of_spec(model: str, method: str, removed: list[int], method_options: dict) -> tuple[int, int]:
    """(MACs, unpruned MACs) of ``model`` pruned by ``method`` with the removed counts ``removed``."""
    import warnings

    from ...pruning.flops import count_macs
    from ...pruning.patch import apply_method, create_pruned

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        network = create_pruned(model, method, schedule=removed, weights="random", **method_options)
    baseline = apply_method(copy.deepcopy(network), "none")
    return count_macs(network).macs, count_macs(baseline).macs
