"""Latency measurement: warm-up, timed iterations, statistics, environment.

Protocol (DESIGN.md "Devices and measurement"; VPA paper §4.1): ``warmup``
untimed queries (default 20), then ``iterations`` timed ones (default 100),
each synchronised by its runner (host timer on the CPU, CUDA events on the
GPU). Reported: median, mean, p90, p99, std, min and max of one query of
``batch`` images in ms, and throughput ``batch · 1000 / median`` images/s.
The paper's per-image latency is ``median / batch``. The environment (CPU
model, cores and threads, GPU, driver, CUDA, library versions, Jetson power
mode and clocks where readable) travels with the numbers.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import VitPruneError
from .results import SCHEMA, now_iso, slug
from .runners.base import LoadedModel, Runner


def latency_stats(samples_ms: list[float] | np.ndarray) -> dict[str, float]:
    """Median, mean, p90, p99, std (population), min and max of the samples (ms)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0:
        raise VitPruneError("no timed iterations; pass --iters 1 or more")
    return {
        "median": float(np.median(values)),
        "mean": float(values.mean()),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def measure(runner: Runner, warmup: int = 20, iterations: int = 100, progress: bool = True, label: str = "") -> list[float]:
    """Run ``warmup`` untimed and ``iterations`` timed queries; return the timed ones (ms)."""
    if warmup < 0 or iterations < 1:
        raise VitPruneError(f"--warmup must be ≥ 0 and --iters ≥ 1 (got {warmup}, {iterations})")
    samples: list[float] = []
    if not progress:
        for _ in range(warmup):
            runner.infer()
        return [runner.infer() for _ in range(iterations)]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"), TimeRemainingColumn())
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


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip().rstrip("\x00")
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model"):
        match = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or platform.machine()


def physical_cores() -> int:
    """Distinct (package, core) pairs in /proc/cpuinfo; the logical count when unreadable."""
    text = _read("/proc/cpuinfo") or ""
    pairs = set(re.findall(r"physical id\s*:\s*(\d+)[\s\S]*?core id\s*:\s*(\d+)", text))
    return len(pairs) or (os.cpu_count() or 1)


def _run_quiet(command: list[str]) -> str | None:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() if completed.returncode == 0 else None


def jetson_info() -> dict[str, Any]:
    """Jetson model, L4T release, nvpmodel power mode and clocks, where readable (empty elsewhere)."""
    model = _read("/proc/device-tree/model")
    release = _read("/etc/nv_tegra_release")
    if not release and not (model and "jetson" in model.lower()):
        return {}
    info: dict[str, Any] = {"model": model, "l4t": release.splitlines()[0] if release else None}
    power = _run_quiet(["nvpmodel", "-q"])
    if power:
        info["power_mode"] = " ".join(line.strip() for line in power.splitlines() if line.strip())
    gpu_freq = _read("/sys/devices/gpu.0/devfreq/17000000.gpu/cur_freq") or _read("/sys/devices/17000000.gpu/devfreq/17000000.gpu/cur_freq")
    if gpu_freq:
        info["gpu_freq_hz"] = gpu_freq
    return info


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
    smi = _run_quiet(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,power.limit", "--format=csv,noheader"])
    if smi:
        parts = [p.strip() for p in smi.splitlines()[0].split(",")]
        info.update(zip(("driver", "sm_clock", "sm_clock_max", "power_limit"), parts))
    return info


def library_versions(backend: str) -> dict[str, str]:
    from importlib import metadata

    from .. import __version__

    versions = {"vitprune": __version__, "python": platform.python_version(), "numpy": np.__version__}
    for package in ("torch", "timm", "onnx", "onnxruntime"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if backend == "trt":
        from ..tensorrt.env import import_tensorrt

        trt = import_tensorrt()
        versions[trt.flavour] = trt.version
    return versions


def capture_environment(runner: Runner) -> dict[str, Any]:
    import torch

    environment: dict[str, Any] = {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_cores": physical_cores(),
        "cpu_logical": os.cpu_count(),
        "threads": runner.threads or (torch.get_num_threads() if runner.backend.startswith("torch") else physical_cores()),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "libraries": library_versions(runner.backend),
    }
    if runner.device_kind == "cuda":
        environment["gpu"] = gpu_info()
    jetson = jetson_info()
    if jetson:
        environment["jetson"] = jetson
    return environment


def default_device_name(runner: Runner) -> str:
    """``jetson-orin-nano`` on a Jetson, the GPU name for CUDA backends, else ``cpu-<cores>core``."""
    jetson = jetson_info()
    if jetson.get("model"):
        name = re.sub(r"nvidia\s+", "", jetson["model"], flags=re.IGNORECASE)
        name = re.sub(r"\s+developer kit.*$", "", name, flags=re.IGNORECASE)
        return slug(name)
    if runner.device_kind == "cuda":
        from ..tensorrt.env import cuda_gpu_name

        gpu = cuda_gpu_name()
        if gpu:
            return slug(re.sub(r"^nvidia\s+", "", gpu, flags=re.IGNORECASE))
    return f"cpu-{physical_cores()}core"


# ---------------------------------------------------------------- one measurement → result


def latency_result(
    loaded: LoadedModel,
    runner: Runner,
    samples_ms: list[float],
    warmup: int,
    device: str,
    environment: dict[str, Any],
) -> dict[str, Any]:
    """A ``vitprune.result/1`` latency result (see :mod:`vitprune_export.measure.results`)."""
    stats = latency_stats(samples_ms)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": "latency",
        "model": loaded.model,
        "method": loaded.method,
        "method_options": loaded.method_options,
        "rate": loaded.rate,
        "keep_counts": list(loaded.keep_counts),
        "macs": loaded.macs,
        "baseline_macs": loaded.baseline_macs,
        "weights": loaded.weights,
        "device": device,
        "backend": runner.backend,
        "precision": runner.precision,
        "batch": runner.batch,
        "latency_ms": stats,
        "images_per_s": runner.batch * 1000.0 / stats["median"] if stats["median"] > 0 else 0.0,
        "warmup": warmup,
        "iterations": len(samples_ms),
        "schedule": loaded.schedule,
        "environment": environment,
        "created": now_iso(),
        "source": loaded.source,
    }
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


__all__ = ["capture_environment", "default_device_name", "latency_result", "latency_stats", "measure", "profile"]
