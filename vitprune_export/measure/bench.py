"""``vitprune bench``: a grid of models × methods × rates × backends × batch sizes × threads, measured interleaved.

Each cell of the grid is one measurement (one model pruned one way, on one
backend, batch size and thread count) and becomes one ``vitprune.result/1``
JSON in the results folder, named after the pruning record
(``<device>/<model>_<method>_<rate>_<backend>_b<batch>[_t<threads>].json``).

How a grid is run:

1. **Expand** the axes (:func:`expand_grid`); the unpruned model (``none``) is
   always part of it, since every Δ% is measured against it.
2. **Build** each pruned model once, one model (its variants) at a time, so memory holds
   one model's variants, not the grid's (its :class:`~vitprune_export.record.PruningRecord`
   names the files), and **skip** cells whose result exists and carries the same
   fingerprint — what was measured: the pruned model and its weights, warm-up,
   iterations, chunk, runner options and library versions (``force`` redoes them;
   a result measured otherwise is measured again).
3. **Export** once per (model, method, rate, batch) that an ``ort-cpu`` or ``ov-cpu`` cell
   still needs, parity-checked, into ``<results>/onnx/``; a file there is reused. An ``int8``
   cell (``--precisions fp32,int8``) runs that export quantized to Q/DQ, calibrated on seeded
   random images (latency does not depend on the scales' values), and is paired with the INT8
   baseline, so its Δ% is INT8 pruned against INT8 unpruned; fp32 and INT8 are two columns.
4. **Measure** one group at a time — the cells that share (model, backend,
   batch, threads) — with one set of runtime settings: the runner of the
   group's baseline chooses what the user left open (threads, ONNX Runtime's
   spinning and graph optimisation) and every cell of the group runs with
   that, so pruned and unpruned differ only by the model. Interleaved: after a warm-up, every round times a chunk of
   queries of each cell in turn (the order rotates each round), so machine
   drift hits every cell alike. The group's baseline runs in every round even
   when its own result is done, so each pruned cell has a paired ratio per
   round.
5. **Write** each cell's result as soon as its group is measured; an
   interruption (Ctrl-C) keeps every group already written.

One bench at a time writes a results folder (a lock file, :func:`~vitprune_export.files.folder_lock`):
two benches on one machine would time each other, and both would write the same cells.

Noise: per round, a cell's chunk median over the baseline's chunk median is one
paired ratio. A result records ``noise``: the median paired change
(``delta_pct``), the spread of the paired changes (``spread_pct``, their
inter-quartile range) and ``noisy`` when that spread is larger than the
change itself — the difference is then not told apart from the machine's
drift (``vitprune compare`` greys such Δ%).
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..portable.interleave import interleave, repeated, samples_of
from .results import DEFAULT_ROOT, default_result_path

BASELINE = "none"
CPU_BACKENDS = ("torch-cpu", "ort-cpu", "ov-cpu")
#: backends whose thread count is a grid axis (the others take one cell, threads left to the runtime)
THREADED_BACKENDS = CPU_BACKENDS


# ---------------------------------------------------------------- the grid


@dataclass(frozen=True)
class Variant:
    """One pruned model: model × method × (rate or schedule file)."""

    model: str
    method: str
    rate: float | None = None
    schedule: Path | None = None

    @property
    def label(self) -> str:
        if self.method == BASELINE:
            return f"{self.model} {self.method}"
        how = f"r={self.rate:g}" if self.rate is not None else f"schedule {self.schedule}"
        return f"{self.model} {self.method} {how}"


@dataclass(frozen=True)
class BenchCell:
    """One measurement: a variant on a backend at a batch size and thread count (None: the runtime's choice)."""

    variant: Variant
    backend: str
    batch: int
    threads: int | None
    precision: str = "fp32"  # int8: the export quantized (Q/DQ), for the ONNX backends

    @property
    def group(self) -> tuple[str, str, int, int | None, str]:
        """The cells measured together, interleaved: same model, backend, batch, threads and precision (an
        INT8 cell is paired with the INT8 baseline)."""
        return (self.variant.model, self.backend, self.batch, self.threads, self.precision)

    @property
    def label(self) -> str:
        threads = f" {self.threads}t" if self.threads else ""
        precision = "" if self.precision == "fp32" else f" {self.precision}"
        return f"{self.variant.label} · {self.backend} b{self.batch}{threads}{precision}"


def expand_grid(
    models: list[str],
    methods: list[str],
    rates: list[float],
    schedules: list[Path],
    backends: list[str],
    batches: list[int],
    threads: list[int | None],
    precisions: list[str] = ("fp32",),
) -> list[BenchCell]:
    """Every cell of the grid, the baseline first per model; threads apply to CPU backends only, precisions
    other than fp32 to the backends that run an ONNX file (ONNX Runtime, OpenVINO).

    The unpruned model is added when ``methods`` leaves it out. A pruning method takes each rate
    and each schedule file; ``none`` takes neither (one variant).
    """
    if not rates and not schedules and any(method != BASELINE for method in methods):
        raise VitPruneError("give --rates (e.g. 0.06) or --schedules for the pruning methods")
    ordered = [BASELINE] + [method for method in dict.fromkeys(methods) if method != BASELINE]
    variants = []
    for model in dict.fromkeys(models):
        for method in ordered:
            if method == BASELINE:
                variants.append(Variant(model, method))
                continue
            variants += [Variant(model, method, rate=rate) for rate in rates]
            variants += [Variant(model, method, schedule=Path(path)) for path in schedules]
    from .runners import ONNX_BACKENDS

    cells = []
    for variant in variants:
        for backend in dict.fromkeys(backends):
            for batch in dict.fromkeys(batches):
                for count in dict.fromkeys(threads) if backend in THREADED_BACKENDS else [None]:
                    for precision in dict.fromkeys(precisions) if backend in ONNX_BACKENDS else ["fp32"]:
                        cells.append(BenchCell(variant, backend, batch, count, precision))
    return cells


# ---------------------------------------------------------------- backends that can run here


def unavailable_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run on this machine (one line), or None when it can."""
    from .runners import list_backends

    if backend not in list_backends():
        from ..errors import did_you_mean

        raise VitPruneError(
            f"unknown backend {backend!r}{did_you_mean(backend, list_backends())}; choose from {', '.join(list_backends())}"
        )
    from .runners import OPENVINO_BACKENDS

    if backend in OPENVINO_BACKENDS:
        return _openvino_unavailable(OPENVINO_BACKENDS[backend])
    if backend in CPU_BACKENDS:
        return None
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU here"
    if backend == "trt":
        try:
            from ..tensorrt.env import import_tensorrt

            import_tensorrt()
        except Exception as error:
            return f"TensorRT is not usable ({str(error).splitlines()[0]})"
        return (
            "bench does not build engines yet: 'vitprune build' then 'vitprune profile ENGINE --backend trt', "
            "or bring a device bundle's results with --include"
        )
    return None


def _openvino_unavailable(device: str) -> str | None:
    from .runners.ov_runner import INSTALL, openvino_devices

    try:
        import openvino  # noqa: F401
    except ImportError:
        return f"OpenVINO is not installed ({INSTALL})"
    present = openvino_devices()
    if not any(name.split(".")[0] == device for name in present):
        return f"OpenVINO lists no {device} here (it lists {', '.join(present) or 'none'})"
    return None


# ---------------------------------------------------------------- settings and results


@dataclass
class BenchSettings:
    """How each cell is measured and where results go."""

    output: Path = DEFAULT_ROOT
    weights: str = "random"
    warmup: int = 10
    iterations: int = 60
    chunk: int = 5
    device: str | None = None
    force: bool = False
    runner_options: dict[str, dict[str, Any]] = field(default_factory=dict)  # backend → options

    @property
    def rounds(self) -> int:
        return max(1, math.ceil(self.iterations / self.chunk))


def result_path(record, cell: BenchCell, device: str, root: Path) -> Path:
    """Where ``cell``'s result goes: :func:`default_result_path`, with ``_t<threads>`` when threads are given."""
    head = {**record.to_metadata(), "device": device, "backend": cell.backend, "batch": cell.batch}
    head["precision"] = record.precision or "fp32"  # a float file's record says None: export wrote it in fp32
    path = default_result_path(head, root)
    return path.with_name(f"{path.stem}_t{cell.threads}{path.suffix}") if cell.threads else path


def paired_noise(cell_chunks: list[list[float]], baseline_chunks: list[list[float]]) -> dict[str, Any]:
    """Median paired change against the baseline, its spread (IQR of the per-round changes) and the noisy flag."""
    changes = [
        100.0 * (statistics.median(mine) / statistics.median(base) - 1.0)
        for mine, base in zip(cell_chunks, baseline_chunks)
        if mine and base
    ]
    if not changes:
        return {}
    delta = statistics.median(changes)
    spread = _iqr(changes)
    return {
        "baseline": BASELINE,
        "delta_pct": round(delta, 3),
        "spread_pct": round(spread, 3),
        "rounds": len(changes),
        "noisy": is_noisy(spread, delta),
    }


def is_noisy(spread: float, difference: float) -> bool:
    """A difference is noise when the spread around it is larger than the difference itself."""
    return spread > abs(difference)


def _iqr(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]


# ---------------------------------------------------------------- running the grid


@dataclass
class BenchReport:
    """What a run did: cells written, skipped (done before), backends skipped and why, interrupted or not."""

    planned: int = 0  # cells on the backends that run here
    written: list[Path] = field(default_factory=list)
    skipped_done: list[Path] = field(default_factory=list)
    remeasured: list[Path] = field(default_factory=list)  # a result was there, measured otherwise
    skipped_backends: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # variant/cell label → one-line reason
    interrupted: bool = False
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    devices: dict[str, str] = field(default_factory=dict)  # backend → device folder name


Progress = Callable[..., Any]


class _Job:
    """One pending or reference cell inside a group: its runner, samples and paired chunks."""

    def __init__(self, cell: BenchCell, record, path: Path, write: bool):
        self.cell, self.record, self.path, self.write = cell, record, path, write
        self.runner = None
        self.fingerprint: dict[str, Any] = {}
        self.float_record = record  # the fp32 export's record (an INT8 cell's file is quantized from it)
        self.samples: list[float] = []
        self.chunks: list[list[float]] = []


def run_bench(
    cells: list[BenchCell],
    settings: BenchSettings,
    progress: Any = None,
    log: Callable[[str], None] = lambda message: None,
) -> BenchReport:
    """Run ``cells`` (see the module docstring); return what was written and skipped.

    ``progress``: a ``rich.progress.Progress`` (or None): one task whose description says what runs
    (building, exporting, loading, the cell being timed) and whose total is the queries still to run,
    so its ETA covers the measuring; ``log``: one line per event (skips, exports, failures).
    """
    import contextlib

    task = progress.add_task("preparing …", total=None) if progress is not None else None

    @contextlib.contextmanager
    def status(message: str):
        if task is not None:
            progress.update(task, description=message)
        yield

    from ..files import folder_lock

    report = BenchReport(load_before=_load())
    backends = list(dict.fromkeys(cell.backend for cell in cells))
    for backend in backends:
        reason = unavailable_reason(backend)
        if reason:
            report.skipped_backends[backend] = reason
            log(f"skipped {backend}: {reason}")
    cells = [cell for cell in cells if cell.backend not in report.skipped_backends]
    report.planned = len(cells)
    devices = {backend: settings.device or _device_name(backend) for backend in dict.fromkeys(c.backend for c in cells)}
    report.devices = devices
    if not cells:
        report.load_after = _load()
        return report

    total = 0
    with folder_lock(settings.output):
        try:
            for model in dict.fromkeys(cell.variant.model for cell in cells):  # one model's variants in memory
                model_cells = [cell for cell in cells if cell.variant.model == model]
                networks, records = _build_variants(model_cells, settings, status, report, log)
                groups = _plan_groups(model_cells, records, devices, settings, report)
                pending = {key: jobs for key, jobs in groups.items() if any(job.write for job in jobs)}
                total += sum(
                    (settings.warmup + settings.rounds * settings.chunk) * len(_with_baseline(jobs, groups[key]))
                    for key, jobs in pending.items()
                )
                if task is not None:
                    progress.update(task, total=total or 1, description="measuring")
                for key, jobs in pending.items():
                    jobs = _with_baseline(jobs, groups[key])
                    onnx_paths = _export_needed(jobs, networks, settings, status, report, log)
                    _measure_group(jobs, networks, onnx_paths, settings, progress, task, status, report, log)
                    _write_group(jobs, settings, devices, report)
                del networks
        except KeyboardInterrupt:
            report.interrupted = True
    if task is not None and not total:
        progress.update(task, total=1, completed=1)
    if report.skipped_done:
        log(f"{len(report.skipped_done)} cell(s) already measured in {settings.output} (skipped; --force redoes them)")
    if report.remeasured:
        log(
            f"{len(report.remeasured)} cell(s) measured again: their results were measured otherwise "
            "(other weights, iterations, options or library versions)"
        )
    report.load_after = _load()
    return report


def _plan_groups(cells, records, devices, settings: BenchSettings, report: BenchReport) -> dict[tuple, list[_Job]]:
    """The cells grouped for interleaving, each marked to write unless a result with its fingerprint exists."""
    groups: dict[tuple, list[_Job]] = {}
    for cell in cells:
        if cell.variant not in records:
            continue
        record = records[cell.variant]
        if cell.precision != "fp32":  # the quantized file's record: its results get their own name and column
            record = record.replace(precision=cell.precision, calibration={"data": "random", "method": "minmax"})
        path = result_path(record, cell, devices[cell.backend], settings.output)
        fingerprint = measurement_fingerprint(record, cell, settings)
        done = not settings.force and _measured_alike(path, fingerprint)
        if done:
            report.skipped_done.append(path)
        elif path.is_file() and not settings.force:
            report.remeasured.append(path)
        job = _Job(cell, record, path, write=not done)
        job.float_record = records[cell.variant]
        job.fingerprint = fingerprint
        groups.setdefault(cell.group, []).append(job)
    return groups


def measurement_fingerprint(record, cell: BenchCell, settings: BenchSettings) -> dict[str, Any]:
    """What a cell's number depends on, and its hash: a result is reused only when its fingerprint matches.

    The pruned model (model, method, options, keep counts), its weights, the backend, batch and threads, the
    runner options given, warm-up, iterations and chunk, and the versions of vitprune and its libraries.
    """
    import hashlib
    import json

    from .profile import backend_library_versions

    given = {key: value for key, value in settings.runner_options.get(cell.backend, {}).items() if value is not None}
    measured = {
        "model": record.model,
        "method": record.method,
        "method_options": record.method_options,
        "keep_counts": list(record.keep_counts),
        "weights": record.weights,
        "precision": record.precision or "fp32",
        "backend": cell.backend,
        "batch": cell.batch,
        "threads": cell.threads,
        "runner_options": given,
        "warmup": settings.warmup,
        "iterations": settings.iterations,
        "chunk": settings.chunk,
        "versions": backend_library_versions(cell.backend),
    }
    text = json.dumps(measured, sort_keys=True, default=str)
    return {"hash": hashlib.sha256(text.encode()).hexdigest()[:16], "of": measured}


def _with_baseline(jobs: list[_Job], group: list[_Job]) -> list[_Job]:
    """The group's jobs with its baseline first (measured for pairing even when its result is done)."""
    baseline = [job for job in group if job.cell.variant.method == BASELINE]
    others = [job for job in jobs if job.cell.variant.method != BASELINE]
    return baseline + others


def _load() -> tuple[float, float, float] | None:
    try:
        return tuple(round(value, 2) for value in os.getloadavg())
    except OSError:
        return None


def _device_name(backend: str) -> str:
    from .profile import default_device_name
    from .runners import get_runner

    return default_device_name(get_runner(backend))


def _measured_alike(path: Path, fingerprint: dict[str, Any]) -> bool:
    """``path`` is a valid result measured as ``fingerprint`` says (a file from an older bench has none)."""
    from .results import load_result

    if not path.is_file():
        return False
    try:
        result = load_result(path)
    except VitPruneError:
        return False
    recorded = result.get("fingerprint")
    return isinstance(recorded, dict) and recorded.get("hash") == fingerprint["hash"]


def _build_variants(cells, settings: BenchSettings, status, report: BenchReport, log):
    """Each variant's pruned PyTorch model and record, built once; a variant that cannot be built is reported."""
    import warnings

    from ..pruning.spec import build_pruned_model
    from ..record import PruningRecord

    networks, records = {}, {}
    for variant in dict.fromkeys(cell.variant for cell in cells):
        try:
            with status(f"building {variant.label} …"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                network = build_pruned_model(
                    variant.model, variant.method, variant.rate, None, variant.schedule, settings.weights, {}
                )
        except VitPruneError as error:
            report.failed[variant.label] = str(error)
            log(f"skipped {variant.label}: {error}")
            continue
        networks[variant] = network
        records[variant] = PruningRecord.from_model(network, variant.model)
    return networks, records


def onnx_path(record, batch: int, output: Path) -> Path:
    """The bench's exported file of a variant at a batch size (reused by later runs)."""
    return output / "onnx" / f"{record.tag}_b{batch}.onnx"


def _exported_alike(path: Path, record) -> bool:
    """``path`` is an ONNX file of the same pruned model with the same weights (a file of other weights is not)."""
    from ..record import PruningRecord

    if not path.is_file():
        return False
    try:
        exported = PruningRecord.read(path)
    except VitPruneError:
        return False
    if exported is None:
        return False
    fields = ("model", "method", "method_options", "keep_counts", "weights", "precision")
    return all(getattr(exported, name) == getattr(record, name) for name in fields)


def _export_needed(jobs: list[_Job], networks, settings: BenchSettings, status, report: BenchReport, log):
    """Export (parity-checked) the ONNX files the ONNX Runtime and OpenVINO jobs need; a file already there is
    reused."""
    from .runners import ONNX_BACKENDS

    paths: dict[tuple, Path] = {}
    for job in jobs:
        if job.cell.backend not in ONNX_BACKENDS:
            continue
        key = (job.cell.variant, job.cell.batch, "fp32")
        path = onnx_path(job.float_record, job.cell.batch, settings.output)
        if key in paths or _exported_alike(path, job.float_record):
            paths[key] = path
            if job.cell.precision != "fp32":
                _quantize_needed(job, path, paths, settings, status, report, log)
            continue
        from ..export.onnx import export_onnx

        started = time.perf_counter()
        try:
            with status(f"exporting {job.cell.variant.label} (batch {job.cell.batch}) to ONNX …"):
                exported = export_onnx(
                    copy.deepcopy(networks[job.cell.variant]),
                    path,
                    batch=job.cell.batch,
                    model_name=job.cell.variant.model,
                )
        except VitPruneError as error:
            report.failed[job.cell.label] = f"export failed: {error}"
            log(f"skipped {job.cell.label}: export failed: {error}")
            continue
        paths[key] = exported.path
        log(f"exported {path.name} ({time.perf_counter() - started:.0f} s, parity {exported.parity_max_abs_diff:.1e})")
        if job.cell.precision != "fp32":
            _quantize_needed(job, path, paths, settings, status, report, log)
    return paths


#: calibration images per quantized bench file: latency does not depend on the scales' values
BENCH_CALIBRATION_IMAGES = 32


def _quantize_needed(job: _Job, source: Path, paths: dict, settings: BenchSettings, status, report, log) -> None:
    """The INT8 Q/DQ file of ``source`` for ``job`` (``vitprune quantize``'s placement), calibrated on seeded
    random images: a bench measures latency, which the scales' values do not change; for accuracy quantize
    with real images (``vitprune quantize --data``) and profile that file."""
    import numpy as np

    from ..export.quantize import quantize_onnx

    key = (job.cell.variant, job.cell.batch, job.cell.precision)
    target = source.with_name(f"{source.stem}_{job.cell.precision}.onnx")
    if key in paths:
        return
    if _exported_alike(target, job.record):
        paths[key] = target
        return
    shape = (min(8, BENCH_CALIBRATION_IMAGES), *job.float_record.input_size)
    generator = np.random.default_rng(0)
    batches = [generator.standard_normal(shape).astype(np.float32) for _ in range(BENCH_CALIBRATION_IMAGES // shape[0])]
    try:
        with status(f"quantizing {job.cell.variant.label} (batch {job.cell.batch}) to {job.cell.precision} …"):
            quantize_onnx(source, target, batches, data="random", precision=job.cell.precision, force=True)
    except VitPruneError as error:
        report.failed[job.cell.label] = f"quantize failed: {error}"
        log(f"skipped {job.cell.label}: quantize failed: {error}")
        return
    paths[key] = target
    log(f"quantized {target.name} ({job.cell.precision}, calibrated on {BENCH_CALIBRATION_IMAGES} random images)")


#: runner settings a group's first runner chooses and the others then run with (runner option → setting)
SHARED_SETTINGS = {
    "ort-cpu": {"threads": "threads", "spinning": "spinning", "graph_optimization": "graph_optimization"},
    "torch-cpu": {"threads": "threads"},
    "ov-cpu": {"threads": "threads", "streams": "streams", "hint": "hint"},
}


def _load_runner(job: _Job, networks, onnx_paths, settings: BenchSettings, chosen: dict[str, Any] | None = None):
    """Load ``job``'s runner; ``chosen``: the settings the group's baseline was tuned to, given to this one."""
    from .runners import ONNX_BACKENDS, get_runner

    cell = job.cell
    options = dict(settings.runner_options.get(cell.backend, {}), threads=cell.threads)
    if chosen:
        options.update({option: chosen[key] for option, key in SHARED_SETTINGS[cell.backend].items()})
    runner = get_runner(cell.backend, **options)
    if cell.backend in ONNX_BACKENDS:
        runner.load(
            onnx_paths[(cell.variant, cell.batch, cell.precision)], batch=cell.batch, model_name=cell.variant.model
        )
    else:
        runner.load(copy.deepcopy(networks[cell.variant]), batch=cell.batch, model_name=cell.variant.model)
    if chosen:
        runner.settings["chosen_by"] = "the group's baseline (tuned or given there)"
    return runner


def _measure_group(jobs, networks, onnx_paths, settings, progress, task, status, report, log) -> None:
    """Load every job's runner, warm up, then time ``rounds`` chunks per job, interleaved, rotating the order."""
    from .runners import ONNX_BACKENDS

    ready = []
    chosen = None  # one set of runtime settings per group: pruned and unpruned compared like for like
    for job in jobs:
        if (
            job.cell.backend in ONNX_BACKENDS
            and (job.cell.variant, job.cell.batch, job.cell.precision) not in onnx_paths
        ):
            continue
        try:
            with status(f"loading {job.cell.label} …"):
                job.runner = _load_runner(job, networks, onnx_paths, settings, chosen)
            if chosen is None and job.cell.backend in SHARED_SETTINGS:
                chosen = job.runner.settings
        except VitPruneError as error:
            report.failed[job.cell.label] = str(error)
            log(f"skipped {job.cell.label}: {error}")
            continue
        ready.append(job)

    def query(job: _Job) -> Callable[[], float]:
        def once() -> float:
            latency = job.runner.infer()
            _advance(progress, task, job)
            return latency

        return once

    try:
        samplers = {index: repeated(query(job)) for index, job in enumerate(ready)}
        chunks = interleave(samplers, settings.rounds, settings.chunk, warmup=settings.warmup, rotate=True)
        samples = samples_of(chunks)
        for index, job in enumerate(ready):
            job.chunks.extend(chunks[index])
            job.samples.extend(samples[index])
    finally:
        jobs[:] = ready


def _advance(progress, task, job: _Job) -> None:
    if progress is not None and task is not None:
        progress.update(task, advance=1, description=job.cell.label)


def _write_group(jobs: list[_Job], settings: BenchSettings, devices: dict[str, str], report: BenchReport) -> None:
    from .profile import capture_environment, latency_result
    from .results import write_result

    baseline = next((job for job in jobs if job.cell.variant.method == BASELINE), None)
    for job in jobs:
        runner = job.runner
        if job.write:
            environment = capture_environment(runner)
            result = latency_result(
                job.record, runner, job.samples, settings.warmup, devices[job.cell.backend], environment
            )
            result["threads"] = job.cell.threads
            result["fingerprint"] = job.fingerprint
            result["latency_spread_ms"] = round(_iqr(job.samples), 4)
            if baseline is not None and baseline is not job:
                result["noise"] = paired_noise(job.chunks, baseline.chunks)
            result["load_average"] = {"before": report.load_before, "now": _load()}
            result["source"] = (
                f"vitprune bench (interleaved with {len(jobs) - 1} other cell(s): {len(job.chunks)} rounds × "
                f"{settings.chunk} queries, order rotating) · {runner.source}"
            )
            write_result(job.path, result)
            report.written.append(job.path)
        runner.close()


@dataclass
class BenchOutcome:
    """A finished (or interrupted) run: what it did, the closing tables (one per batch size) and the plots."""

    cells: list[BenchCell]
    report: BenchReport
    comparisons: list[tuple[int, Any]] = field(default_factory=list)  # (batch, measure.compare.Comparison)
    plots: list[Path] = field(default_factory=list)


def closing_tables(output: Path, include: list[Path], plot: bool) -> tuple[list[tuple[int, Any]], list[Path]]:
    """The compare table per batch size over the results folder and ``include`` (e.g. a device bundle's
    results), and their plots (``<output>/latency_b<batch>.png``)."""
    from .compare import build_comparison
    from .results import load_results

    sources = [path for path in [output, *include] if Path(path).exists()]
    if not sources:
        return [], []
    results = load_results(sources)
    batches = sorted({result["batch"] for result in results if result["kind"] == "latency"})
    comparisons = [(batch, build_comparison(results, batch=batch)) for batch in batches]
    plots = []
    if plot and comparisons:
        from .plots import plot_comparison

        for batch, comparison in comparisons:
            path = Path(output) / f"latency_b{batch}.png"
            plot_comparison(comparison, path)
            plots.append(path)
    return comparisons, plots


def bench_grid(
    cells: list[BenchCell],
    *,
    settings: BenchSettings,
    include: list[Path],
    plot: bool = True,
    progress: Any = None,
    log: Callable[[str], None] = lambda message: None,
) -> BenchOutcome:
    """What ``vitprune bench`` runs once its grid is parsed: measure ``cells`` (:func:`run_bench`), then the
    closing tables over the results and ``include``."""
    report = run_bench(cells, settings, progress=progress, log=log)
    outcome = BenchOutcome(cells=cells, report=report)
    if settings.output.exists() or include:
        outcome.comparisons, outcome.plots = closing_tables(settings.output, include, plot)
    return outcome


__all__ = [
    "BASELINE",
    "BenchOutcome",
    "bench_grid",
    "closing_tables",
    "BenchCell",
    "BenchReport",
    "BenchSettings",
    "Variant",
    "expand_grid",
    "is_noisy",
    "measurement_fingerprint",
    "paired_noise",
    "result_path",
    "run_bench",
    "unavailable_reason",
]
