"""PyTorch runners: ``torch-cpu`` (host timer) and ``torch-cuda`` (CUDA events).

The model is a patched timm ViT (``apply_method``); it runs under
``torch.inference_mode``. On the GPU the time is taken with a pair of CUDA
events recorded on the current stream around the forward pass and read after
``end.synchronize()``, so asynchronous kernel launches are counted in full.

Settings (:attr:`Runner.settings`, written into every result):

- ``threads`` (``torch.set_num_threads``): given, or on the CPU chosen at
  :meth:`TorchCpuRunner.load` among the physical cores and half of them by timing
  both, interleaved (``tune=False``: PyTorch's own default).
- ``compile``: ``None`` runs eager; ``"default"``, ``"reduce-overhead"`` or
  ``"max-autotune"`` run ``torch.compile(model, mode=…)`` (compiled during
  warm-up; static token counts mean one graph, no recompilation). Measured
  apart from eager: it is a different program.
- ``cuda_graphs`` (``torch-cuda``): capture the whole forward once in a
  ``torch.cuda.CUDAGraph`` and replay it per query — possible because every
  shape is static (keep counts are baked in); it removes the per-kernel launch
  cost that dominates small batches.
"""

from __future__ import annotations

import statistics
import time

import torch

from ...errors import VitPruneError
from ...record import PruningRecord
from .base import Runner

#: ``torch.compile`` modes a runner accepts (``None``: eager)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
#: timed queries per thread count while tuning (after one untimed), interleaved
TUNING_ROUNDS = 5


class TorchCpuRunner(Runner):
    """A patched model on the CPU; ``threads`` sets ``torch.set_num_threads``."""

    backend = "torch-cpu"
    device_kind = "cpu"

    def __init__(
        self, threads: int | None = None, precision: str = "fp32", compile: str | bool | None = None, tune: bool = True
    ):
        super().__init__(threads=threads, precision=precision)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise VitPruneError(f"--threads must be a whole number ≥ 1, not {threads!r}")
        if compile is True:
            compile = "default"
        if compile in (False, "none", "eager", ""):
            compile = None
        if compile is not None and compile not in COMPILE_MODES:
            raise VitPruneError(f"compile mode must be one of {', '.join(COMPILE_MODES)} (or none), not {compile!r}")
        self.compile_mode = compile
        self.tune = tune

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
        self.loaded = PruningRecord.from_model(target, model_name)
        self.source = f"{self.loaded.model} ({self.loaded.method}, PyTorch)"
        self.input_shape = tuple(self.loaded.input_size)
        self.batch = batch
        self.network = target.eval().to(self._device(), self._dtype())
        self.images = torch.randn((batch, *self.input_shape), device=self._device(), dtype=self._dtype())
        self._output = None
        self._forward_fn = self.network
        if self.compile_mode is not None:
            self._forward_fn = torch.compile(self.network, mode=self.compile_mode, dynamic=False, fullgraph=False)
        self.settings = {"compile": self.compile_mode or "eager"}
        self._prepare()
        self._choose_threads()
        self.settings["torch"] = torch.__version__
        return self.loaded

    def _prepare(self) -> None:
        """Backend-specific set-up after the model is on its device (CUDA graph capture)."""

    def _choose_threads(self) -> None:
        from ...portable.environment import physical_cores

        if self.threads:
            torch.set_num_threads(self.threads)
            self.settings.update(threads=self.threads, chosen_by="given")
            return
        if not self.tune or self.device_kind != "cpu":
            self.threads = torch.get_num_threads()
            self.settings.update(threads=self.threads, chosen_by="default")
            return
        cores = physical_cores()
        candidates = sorted({cores, max(1, cores // 2)}, reverse=True)
        timings: dict[int, list[float]] = {count: [] for count in candidates}
        for count in candidates:  # untimed: first-query allocations (and compilation)
            torch.set_num_threads(count)
            self._run()
        for _ in range(TUNING_ROUNDS):
            for count in candidates:
                torch.set_num_threads(count)
                timings[count].append(self._run())
        medians = {count: statistics.median(times) for count, times in timings.items()}
        self.threads = min(medians, key=medians.__getitem__)
        torch.set_num_threads(self.threads)
        self.settings.update(
            threads=self.threads,
            chosen_by="tuned",
            tuning_ms={f"{count}t": round(ms, 3) for count, ms in medians.items()},
        )

    def _forward(self) -> None:
        with torch.inference_mode():
            self._output = self._forward_fn(self.images)

    def _run(self) -> float:
        if self.threads and torch.get_num_threads() != self.threads:  # another runner in this process changed it
            torch.set_num_threads(self.threads)
        started = time.perf_counter()
        self._forward()
        return (time.perf_counter() - started) * 1e3

    def output(self):
        return None if self._output is None else self._output.float().cpu().numpy()

    def close(self) -> None:
        self.network = self.images = self._output = self._forward_fn = None


class TorchCudaRunner(TorchCpuRunner):
    """A patched model on the first CUDA GPU, fp32 or fp16, timed with CUDA events.

    ``cuda_graphs=True`` captures the forward pass once (after warm-up on a side
    stream, as ``torch.cuda.graphs`` requires) and replays it per query on the
    captured input buffer.
    """

    backend = "torch-cuda"
    device_kind = "cuda"
    precisions = ("fp32", "fp16")

    def __init__(
        self,
        threads: int | None = None,
        precision: str = "fp32",
        compile: str | bool | None = None,
        tune: bool = True,
        cuda_graphs: bool = False,
    ):
        super().__init__(threads=threads, precision=precision, compile=compile, tune=tune)
        if cuda_graphs and self.compile_mode is not None:
            raise VitPruneError(
                "CUDA graphs and torch.compile are two ways to the same end: pass cuda_graphs or "
                "compile='reduce-overhead' (which captures CUDA graphs itself), not both"
            )
        self.cuda_graphs = bool(cuda_graphs)
        self.graph = None

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

    def _prepare(self) -> None:
        self.settings["cuda_graphs"] = self.cuda_graphs
        if self.cuda_graphs:
            self.graph, self._graph_output = capture_cuda_graph(self.network, self.images)

    def _forward(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            self._output = self._graph_output
            return
        super()._forward()

    def _run(self) -> float:
        stream = torch.cuda.current_stream()
        self._start.record(stream)
        self._forward()
        self._end.record(stream)
        self._end.synchronize()
        return float(self._start.elapsed_time(self._end))

    def close(self) -> None:
        super().close()
        self.graph = self._graph_output = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def capture_cuda_graph(network: torch.nn.Module, images: torch.Tensor, warmup: int = 3):
    """``(graph, output)``: the forward pass of ``network`` on ``images`` captured in a CUDA graph.

    Replaying the graph recomputes ``output`` in place from whatever ``images`` holds.
    Warm-up runs on a side stream first (cuDNN/cuBLAS handles, the caching allocator),
    as ``torch.cuda.graph`` requires. Every shape in a pruned model is static, so one
    capture serves every query.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.inference_mode(), torch.cuda.stream(side):
        for _ in range(warmup):
            network(images)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        output = network(images)
    torch.cuda.synchronize()
    return graph, output
