"""The interface every backend runner shares: load, infer, last latency.

A runner owns one loaded model (a patched PyTorch module, an ONNX Runtime
session or a TensorRT execution context) and an input of a fixed batch size.
:meth:`Runner.load` returns the model's pruning record
(:class:`~vitprune_export.record.PruningRecord`: read from the file's metadata,
or made from the PyTorch model) and remembers what it ran (``source``) and its
input shape. :meth:`Runner.infer` runs it once, waits until the result exists (host
timer on the CPU, CUDA events on the GPU) and records the time in
:attr:`Runner.last_latency_ms`; :mod:`vitprune_export.measure.profile` calls it in a
loop. The VPA paper's protocol (§4.1, "Latency measures the time to process
one image by dividing the time to process one query by the batch size") is
applied by the profiler, not here: a runner times whole queries.
"""

from __future__ import annotations

import statistics
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ...portable.interleave import interleave, repeated, samples_of, wall_ms
from ...record import PruningRecord


def interleaved_medians(queries: list[Callable[[], Any]], rounds: int) -> list[float]:
    """Median ms of each query: one untimed call each (first-query allocations), then ``rounds`` rounds
    calling each in turn, so a drifting machine hits every candidate alike. Runners tune settings with it."""
    chunks = interleave({index: repeated(wall_ms(query)) for index, query in enumerate(queries)}, rounds, 1, warmup=1)
    return [statistics.median(times) for times in samples_of(chunks).values()]


class Runner(ABC):
    """One backend. Subclasses set ``backend``, implement :meth:`load` and :meth:`_run`."""

    backend: str = ""
    device_kind: str = "cpu"  # "cpu" | "cuda": decides how the environment is described
    #: the precisions this backend can measure
    precisions: tuple[str, ...] = ("fp32",)

    def __init__(self, threads: int | None = None, precision: str = "fp32"):
        self.threads = threads
        self.precision = precision
        self.last_latency_ms: float | None = None
        self.loaded: PruningRecord | None = None
        self.source: str = ""
        self.input_shape: tuple[int, ...] = ()
        self.batch: int = 1
        #: the runtime settings the queries run with, chosen at :meth:`load` or given by the
        #: user (threads, spinning, graph optimisation, compile mode, …) and ``chosen_by``
        #: ("tuned" | "given" | "default"); a result records them
        self.settings: dict[str, Any] = {}

    @abstractmethod
    def load(self, target: Any, batch: int = 1, model_name: str | None = None) -> PruningRecord:
        """Load ``target`` (a path or a patched module) for inputs of ``batch`` images; return its record."""

    @abstractmethod
    def _run(self) -> float:
        """Run the prepared input once; return the elapsed milliseconds (synchronised)."""

    def infer(self) -> float:
        """Run once on the prepared input; return and remember the latency in ms."""
        self.last_latency_ms = self._run()
        return self.last_latency_ms

    def output(self):
        """The last output as a numpy array (for parity checks); None when not kept."""
        return None

    def close(self) -> None:  # noqa: B027 (a hook: a runner that holds nothing need not override it)
        """Free what the runner holds (sessions, device memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
