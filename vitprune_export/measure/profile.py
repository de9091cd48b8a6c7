"""Latency measurement: warm-up, timed iterations, statistics, environment → one result.

Protocol (VPA paper §4.1): ``warm_up`` untimed queries (default 20), then
``iterations`` timed ones (default 100), each synchronised by its runner (host
timer on the CPU, CUDA events on the GPU). Reported: median, mean, p90, p99,
std, min and max of one query of ``batch`` images in ms, and throughput
``batch · 1000 / median`` images/s (:mod:`..portable.stats`, shared with device
bundles). The paper's per-image latency is ``median / batch``. The environment
(CPU model, cores and threads, GPU, driver, CUDA, library versions, Jetson power
mode and clocks where readable; :mod:`..portable.environment`) travels with the
numbers, and so does the model's pruning record.

:func:`profile_target` is what ``vitprune profile`` runs: a model spec (built in
PyTorch, and exported to a temporary ONNX file for ONNX Runtime), an ONNX file
or an engine, on one backend.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..files import check_input_file, slug
from ..portable import environment as machine
from ..portable import results as result_format
from ..portable import stats
from ..record import ENGINE_SUFFIXES, OnnxArtifact, PruningRecord, library_versions
from .runners import TORCH_BACKENDS, get_runner
from .runners.base import Runner

Status = Callable[[str], contextlib.AbstractContextManager]


def latency_stats(samples_ms) -> dict[str, float]:
    """Median, mean, p90, p99, std (population), min and max of the samples (ms)."""
    try:
        return stats.latency_stats(samples_ms)
    except ValueError:
        raise VitPruneError("no timed iterations; pass --iterations 1 or more") from None


def measure(
    runner: Runner, warmup: int = 20, iterations: int = 100, progress: bool = True, label: str = ""
) -> list[float]:
    """Run ``warmup`` untimed and ``iterations`` timed queries; return the timed ones (ms)."""
    if warmup < 0 or iterations < 1:
        raise VitPruneError(f"--warm-up must be ≥ 0 and --iterations ≥ 1 (got {warmup}, {iterations})")
    samples: list[float] = []
    if not progress:
        for _ in range(warmup):
            runner.infer()
        return [runner.infer() for _ in range(iterations)]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[last]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(f"{label or runner.backend}: warm-up", total=warmup + iterations, last="")
        for _ in range(warmup):
            bar.update(task, advance=1, last=f"{runner.infer():.2f} ms")
        bar.update(task, description=f"{label or runner.backend}: timing")
        for _ in range(iterations):
            samples.append(runner.infer())
            bar.update(task, advance=1, last=f"{samples[-1]:.2f} ms")
    return samples


# ---------------------------------------------------------------- environment


def gpu_info() -> dict[str, Any]:
    """GPU name, compute capability, driver and CUDA versions through PyTorch and nvidia-smi."""
    import torch

    if not torch.cuda.is_available():
        return {}
    properties = torch.cuda.get_device_properties(0)
    info: dict[str, Any] = {
        "name": properties.name,
        "compute_capability": f"{properties.major}.{properties.minor}",
        "memory_gib": round(properties.total_memory / 2**30, 1),
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    smi = machine.run_quiet(
        ["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.limit", "--format=csv,noheader"]
    )
    if smi:
        parts = [p.strip() for p in smi.splitlines()[0].split(",")]
        info.update(zip(("driver", "sm_clock", "sm_clock_max", "power_limit"), parts))
    return info


def backend_library_versions(backend: str) -> dict[str, str]:
    """:func:`~vitprune_export.record.library_versions`, plus TensorRT's for the ``trt`` backend."""
    versions = library_versions()
    if backend == "trt":
        from ..tensorrt.env import import_tensorrt

        trt = import_tensorrt()
        versions[trt.flavour] = trt.version
    return versions


def capture_environment(runner: Runner) -> dict[str, Any]:
    """The machine (:func:`~vitprune_export.portable.environment.describe_machine`), threads, libraries, GPU."""
    import torch

    environment: dict[str, Any] = machine.describe_machine()
    environment["threads"] = runner.threads or (
        torch.get_num_threads() if runner.backend.startswith("torch") else machine.physical_cores()
    )
    environment["libraries"] = backend_library_versions(runner.backend)
    if runner.device_kind == "cuda":
        environment["gpu"] = gpu_info()
    return environment


def default_device_name(runner: Runner) -> str:
    """``jetson-orin-nano`` on a Jetson, the GPU name for CUDA backends, else ``cpu-<cores>core``."""
    jetson = machine.jetson_info()
    if jetson.get("model"):
        name = re.sub(r"nvidia\s+", "", jetson["model"], flags=re.IGNORECASE)
        name = re.sub(r"\s+developer kit.*$", "", name, flags=re.IGNORECASE)
        return slug(name)
    if runner.device_kind == "cuda":
        from ..tensorrt.env import cuda_gpu_name

        gpu = cuda_gpu_name()
        if gpu:
            return slug(re.sub(r"^nvidia\s+", "", gpu, flags=re.IGNORECASE))
    return f"cpu-{machine.physical_cores()}core"


# ---------------------------------------------------------------- one measurement → result


def latency_result(
    loaded: PruningRecord,
    runner: Runner,
    samples_ms: list[float],
    warmup: int,
    device: str,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """A ``vitprune.result/1`` latency result (:func:`..portable.results.latency_result`, shared with bundles)."""
    latency_stats(samples_ms)  # a clear error for no samples
    result = result_format.latency_result(
        loaded.to_metadata(),
        samples_ms,
        runner.batch,
        warmup,
        device,
        runner.precision,
        environment,
        runner.source,
        backend=runner.backend,
    )
    if runner.settings:  # threads, spinning, graph optimisation, compile mode: chosen or given
        result["settings"] = runner.settings
    note = getattr(runner, "note", "")
    if note:
        result["note"] = note
    return result


def profile(
    runner: Runner,
    target: Any,
    batch: int = 1,
    warmup: int = 20,
    iterations: int = 100,
    device: str | None = None,
    model_name: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Load ``target`` into ``runner``, measure it, return the result dict (not yet written)."""
    if batch < 1:
        raise VitPruneError(f"--batch must be ≥ 1, got {batch}")
    loaded = runner.load(target, batch=batch, model_name=model_name)
    try:
        samples = measure(runner, warmup, iterations, progress=progress, label=f"{loaded.model} {loaded.method}")
        environment = capture_environment(runner)
        device = device or getattr(runner, "suggested_device", None) or default_device_name(runner)
        return latency_result(loaded, runner, samples, warmup, device, environment)
    finally:
        runner.close()


# ---------------------------------------------------------------- what `vitprune profile` measures


@dataclass(frozen=True)
class ModelSpec:
    """A pruned model given by name, method and rate (``--model … --method … --rate …``) instead of a file."""

    model: str | None = None
    method: str | None = None
    rate: float | None = None
    rates: str | None = None
    schedule: Path | None = None
    weights: str = "random"
    knobs: dict[str, Any] = field(default_factory=dict)

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.model, self.method, self.rate, self.rates, self.schedule)) or bool(
            self.knobs
        )


def _no_status(message: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


def profile_target(
    backend: str,
    target: str | Path | None = None,
    spec: ModelSpec = ModelSpec(),
    *,
    batch: int = 1,
    warmup: int = 20,
    iterations: int = 100,
    threads: int | None = None,
    fp16: bool = False,
    plugins: str | Path | None = None,
    device: str | None = None,
    progress: bool = True,
    status: Status = _no_status,
    runner_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure ``target`` (ONNX file or engine) or ``spec`` on ``backend``; return the result (not yet written).

    A spec runs in PyTorch on ``torch-*`` and is exported to a temporary, parity-checked ONNX file
    for ``ort-cpu``; an ONNX file runs in ONNX Runtime, or on ``torch-*`` as the model its pruning
    record rebuilds; an engine runs on ``trt``.
    """
    from ..pruning.models import DEFAULT_MODEL
    from ..pruning.spec import build_pruned_model

    if plugins is not None and backend != "trt":
        raise VitPruneError("--plugins is for --backend trt only")
    given = {option: value for option, value in (runner_options or {}).items() if value is not None}
    if given and backend != "ort-cpu":
        names = ", ".join("--" + option.replace("_", "-") for option in given)
        raise VitPruneError(f"{names}: ONNX Runtime settings, for --backend ort-cpu only")
    runner = get_runner(
        backend,
        threads=threads,
        precision="fp16" if fp16 else "fp32",
        **({"plugin_library": plugins} if backend == "trt" else {}),
        **given,
    )
    with contextlib.ExitStack() as cleanup:
        model_name = None
        if target is None:
            if backend == "trt":
                raise VitPruneError("backend 'trt' needs a TARGET: an engine file (vitprune build)")
            model_name = DEFAULT_MODEL if spec.model is None else spec.model
            with status("building the pruned model…"):
                loaded_target = build_pruned_model(
                    model_name,
                    "none" if spec.method is None else spec.method,
                    spec.rate,
                    spec.rates,
                    spec.schedule,
                    spec.weights,
                    spec.knobs,
                )
            if backend not in TORCH_BACKENDS:  # ort-cpu runs a file: export the spec to a temporary one
                from ..export.onnx import export_onnx

                folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vitprune-profile-")))
                with status("exporting the model spec to ONNX for ONNX Runtime…"):
                    loaded_target = export_onnx(
                        loaded_target, folder / "model.onnx", batch=batch, model_name=model_name
                    ).path
        else:
            if spec.given:
                raise VitPruneError("give either a TARGET file or a model spec (--model/--method/--rate …), not both")
            target = check_input_file(
                target,
                "TARGET",
                "give an ONNX file or an engine",
                "give an ONNX file (vitprune export) or an engine (vitprune build)",
            )
            loaded_target, model_name = _file_target(target, backend, spec.weights, status)
        return profile(
            runner,
            loaded_target,
            batch=batch,
            warmup=warmup,
            iterations=iterations,
            device=device,
            model_name=model_name,
            progress=progress,
        )


def _file_target(target: Path, backend: str, weights: str, status: Status) -> tuple[Any, str | None]:
    """What the runner loads for a file TARGET, and the model name; PyTorch backends rebuild the model from the
    ONNX's record."""
    suffix = target.suffix.lower()
    if backend == "trt":
        if suffix == ".onnx":
            raise VitPruneError(f"--backend trt runs an engine; build one first: vitprune build {target}")
        return target, None
    if suffix in ENGINE_SUFFIXES:
        raise VitPruneError(f"{str(target)!r} is a TensorRT engine; profile it with --backend trt")
    artifact = OnnxArtifact.open(target)  # parsed once: the runner takes the artifact, not the path
    if backend in TORCH_BACKENDS:
        record = artifact.record or PruningRecord.from_metadata({})
        with status("rebuilding the model from the ONNX metadata…"):
            return record.rebuild(weights, source=repr(str(target))), record.model
    return artifact, None


__all__ = [
    "ModelSpec",
    "backend_library_versions",
    "capture_environment",
    "default_device_name",
    "latency_result",
    "latency_stats",
    "measure",
    "profile",
    "profile_target",
]
