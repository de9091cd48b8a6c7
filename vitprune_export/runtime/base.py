"""The interface every backend runner shares: load, infer, last latency.

A runner owns one loaded model (a patched PyTorch module, an ONNX Runtime
session or a TensorRT execution context) and an input of a fixed batch size.
:meth:`Runner.infer` runs it once, waits until the result exists (host
timer on the CPU, CUDA events on the GPU) and records the time in
:attr:`Runner.last_latency_ms`; :mod:`vitprune_export.profile` calls it in a
loop. The VPA paper's protocol (§4.1, "Latency measures the time to process
one image by dividing the time to process one query by the batch size") is
applied by the profiler, not here: a runner times whole queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    """What a runner knows about the model it loaded (fills the results JSON)."""

    model: str
    method: str
    method_options: dict[str, Any] = field(default_factory=dict)
    rate: float | None = None
    keep_counts: list[int] = field(default_factory=list)
    schedule: dict[str, Any] | None = None
    macs: int | None = None
    baseline_macs: int | None = None
    weights: str = "unknown"
    input_shape: tuple[int, ...] = ()
    source: str = ""


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
        self.loaded: LoadedModel | None = None
        self.batch: int = 1
        #: the runtime settings the queries run with, chosen at :meth:`load` or given by the
        #: user (threads, spinning, graph optimisation, compile mode, …) and ``chosen_by``
        #: ("tuned" | "given" | "default"); a result records them
        self.settings: dict[str, Any] = {}

    @abstractmethod
    def load(self, target: Any, batch: int = 1) -> LoadedModel:
        """Load ``target`` (a path or a patched module) for inputs of ``batch`` images."""

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

    def close(self) -> None:
        """Free what the runner holds (sessions, device memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def uniform_rate(schedule: dict[str, Any] | None) -> float | None:
    """The single rate of a schedule made with ``--rate`` (all per-block rates equal), else None."""
    rates = (schedule or {}).get("rates")
    if not rates:
        return None
    first = float(rates[0])
    return first if all(float(r) == first for r in rates) else None


def loaded_from_metadata(metadata: dict[str, Any], source: str) -> LoadedModel:
    """A :class:`LoadedModel` from vitprune's ONNX/engine metadata (``export.read_metadata``)."""
    schedule = metadata.get("schedule")
    return LoadedModel(
        model=str(metadata.get("model", Path(source).stem)),
        method=str(metadata.get("method", "unknown")),
        method_options=dict(metadata.get("method_options") or {}),
        rate=uniform_rate(schedule),
        keep_counts=[int(n) for n in metadata.get("keep_counts") or []],
        schedule=schedule,
        macs=_int_or_none(metadata.get("macs")),
        baseline_macs=_int_or_none(metadata.get("baseline_macs")),
        weights=str(metadata.get("weights", "unknown")),
        input_shape=tuple(int(d) for d in metadata.get("input_size") or ()),
        source=source,
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def fill_macs(loaded: LoadedModel, metadata: dict[str, Any]) -> None:
    """Analytic MACs from the metadata's model, method and schedule when the file does not carry them."""
    if loaded.macs is not None or not metadata.get("model") or not (metadata.get("schedule") or {}).get("removed"):
        return
    try:
        from .torch_runner import macs_of_spec

        loaded.macs, loaded.baseline_macs = macs_of_spec(
            metadata["model"], metadata["method"], list(metadata["schedule"]["removed"]), metadata.get("method_options") or {}
        )
    except Exception:  # noqa: BLE001 - MACs are informative; a model we cannot rebuild keeps None
        return
