"""Measure one block's latency against its token count, plan the keep counts, check the plan.

What ``vitprune plan`` runs. Three curves are measured on the backend, each at a few token
counts (:func:`curve_points`) with the model's own block (weights do not change latency):

* ``block``: the block with no reduction at ``n`` tokens;
* ``mlp``: its MLP half (norm, MLP, residual) at ``n`` tokens;
* ``reduce``: the method's block at ``n`` tokens removing a probe count (a tenth of the patch tokens).

and the unpruned model once, so that ``fixed = unpruned − depth · block(n_0)`` covers the patch
embedding, the head and the runtime's own cost. All parts are timed interleaved (round-robin over
``rounds``), so a load that drifts on a shared machine touches every point alike. The curves are
cached per device in ``results/<device>/curves/``. :mod:`..portable.plan` turns them into keep
counts; the plan is written in the schedule format ``--schedule`` reads (``removed`` per block, as
``vitprune adjust`` writes) and, unless told not to, the planned model is measured beside the
unpruned one so the prediction can be checked.
"""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..export.block_parts import PROBE_SHARE, block_part, curve_points, max_remove_name, probe_of
from ..files import atomic_write_text, slug
from ..portable import plan as planner
from ..portable.interleave import interleave, repeated, samples_of
from ..portable.results import now_iso
from ..portable.stats import latency_stats
from .runners import ONNX_BACKENDS, OPENVINO_BACKENDS

CURVE_SCHEMA = planner.CURVE_SCHEMA
PLAN_BACKENDS = ("ort-cpu", "ov-cpu", "torch-cpu", "torch-cuda")
#: the uniform rate the reduction step is calibrated on is the one the raw model puts nearest this speed-up
CALIBRATION_SPEEDUP = 1.4
#: what a curve point and a checked model report: the protocol's median, or the minimum, which a machine
#: other jobs load disturbs far less (a query longer than the scheduler's slice is preempted there)
STATISTICS = ("median", "min")
#: wall-clock time (the protocol), or the CPU time of the timing thread (one intra-op thread; steady on a shared machine)
CLOCKS = ("wall", "cpu")


@dataclass
class PlanRequest:
    """Everything ``vitprune plan`` takes (see :func:`plan_schedule`)."""

    model: str
    method: str
    knobs: dict[str, Any] = field(default_factory=dict)
    weights: str = "random"
    backend: str = "ort-cpu"
    threads: int | None = None
    batch: int = 1
    latency_ms: float | None = None
    speedup: float | None = None
    sensitivity: Path | None = None
    max_rate: float = 0.25
    points: int = 8
    refine: int = 5
    calibrate: bool = True
    warmup: int = 10
    iterations: int = 60
    rounds: int = 3
    statistic: str = "median"
    clock: str = "wall"
    device: str | None = None
    output: Path | None = None
    force: bool = False  # replace an existing schedule file
    results_root: Path = Path("results")
    remeasure: bool = False
    verify: bool = True


@dataclass
class PlanOutcome:
    plan: planner.Plan
    schedule_path: Path
    curves_path: Path
    curves_cached: bool
    measured_ms: float | None = None
    measured_unpruned_ms: float | None = None
    keep_counts: list[int] = field(default_factory=list)

    @property
    def error(self) -> float | None:
        """(measured − predicted) / predicted of the planned model, both relative to their unpruned latency."""
        if self.measured_ms is None:
            return None
        return self.measured_ms / self.plan.predicted_ms - 1.0


# ---------------------------------------------------------------- the block parts


def _method_and_model(request: PlanRequest):
    from ..pruning.models import CLI_RANDOM_SEED, check_model_name, create_model
    from ..pruning.patch import num_tokens_of
    from ..pruning.spec import resolve_method

    method = resolve_method(request.method, request.knobs)
    if not method.changes_token_count:
        raise VitPruneError(f"method {request.method!r} keeps every token; plan a method that removes tokens")
    check_model_name(request.model)
    network = create_model(request.model, request.weights, seed=CLI_RANDOM_SEED)
    if method.requires_class_token() and getattr(network, "cls_token", None) is None:
        raise VitPruneError(f"method {request.method!r} needs a class token and {request.model!r} has none")
    return method, network, num_tokens_of(network), int(network.num_prefix_tokens), len(network.blocks)


class _Timed:
    """One thing to time: a session (ONNX Runtime) or a module (PyTorch), and its samples.

    ``clock``: ``wall`` (``time.perf_counter``, the protocol) or ``cpu`` (``time.thread_time``: the CPU
    time of this thread, which with one intra-op thread is where ONNX Runtime and PyTorch compute; the
    time a loaded machine's scheduler keeps the thread waiting does not count).
    """

    def __init__(self, run, sync=None, clock: str = "wall"):
        self.run, self.sync, self.samples = run, sync, []
        self.timer = time.thread_time if clock == "cpu" else time.perf_counter

    def once(self) -> float:
        started = self.timer()
        self.run()
        if self.sync is not None:
            self.sync()
        return (self.timer() - started) * 1e3


def _prepare(
    module, example, backend: str, threads: int | None, folder: Path, name: str, clock: str = "wall"
) -> _Timed:
    import torch

    if backend == "ort-cpu":
        import onnxruntime as ort

        from ..export.onnx import _onnx_program

        with torch.no_grad():
            program = _onnx_program(module, example, False, 18)
        path = folder / f"{name}.onnx"
        program.save(str(path))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: example.numpy()}
        return _Timed(lambda: session.run(None, feed), clock=clock)
    if backend in OPENVINO_BACKENDS:  # the part exported as the others are, compiled by OpenVINO
        from ..export.onnx import _onnx_program

        with torch.no_grad():
            program = _onnx_program(module, example, False, 18)
        path = folder / f"{name}.onnx"
        program.save(str(path))
        return prepare_onnx_file(path, threads, clock, backend, batch=int(example.shape[0]))
    device = torch.device("cuda" if backend == "torch-cuda" else "cpu")
    if backend == "torch-cuda":
        from ..tensorrt.env import require_cuda_gpu

        require_cuda_gpu()
    module = module.to(device)
    data = example.to(device)

    def run():
        with torch.inference_mode():
            module(data)

    return _Timed(run, torch.cuda.synchronize if backend == "torch-cuda" else None, clock)


def time_interleaved(
    items: dict[str, _Timed], warmup: int, iterations: int, rounds: int, say, statistic: str = "median"
) -> dict[str, float]:
    """The ``statistic`` (median, or min on a machine others load) of each item's ms, timed round-robin:
    ``rounds`` passes of ``iterations / rounds`` queries each."""
    per_round = max(1, iterations // max(rounds, 1))
    samplers = {key: repeated(item.once) for key, item in items.items()}
    chunks = interleave(
        samplers,
        rounds,
        per_round,
        warmup=warmup,
        on_round=lambda index: say(f"timing round {index + 1}/{rounds} over {len(items)} parts"),
    )
    for key, samples in samples_of(chunks).items():
        items[key].samples.extend(samples)
    return {key: latency_stats(item.samples)[statistic] for key, item in items.items()}


# ---------------------------------------------------------------- curves (cached)


def curves_path(request: PlanRequest, device: str) -> Path:
    knobs = "".join(f"_{slug(k)}-{slug(str(v))}" for k, v in sorted(request.knobs.items()))
    threads = f"_t{request.threads}" if request.threads else ""
    threads += "" if request.statistic == "median" else f"_{request.statistic}"
    threads += "" if request.clock == "wall" else f"_{request.clock}"
    name = f"{slug(request.model)}_{slug(request.method)}{knobs}_{request.backend}_b{request.batch}{threads}.json"
    return Path(request.results_root) / slug(device) / "curves" / name


def _default_device(request: PlanRequest) -> str:
    from .profile import default_device_name
    from .runners import get_runner

    return request.device or default_device_name(get_runner(request.backend, threads=request.threads))


def measure_curves(request: PlanRequest, say=lambda message: None) -> dict[str, Any]:
    """Measure the three block curves and the unpruned model; return the curves JSON (not yet written)."""
    import torch

    from ..export.onnx import export_onnx
    from ..pruning.patch import apply_method
    from ..record import PruningRecord

    _check_backend(request.backend)
    if request.threads and request.backend.startswith("torch"):
        torch.set_num_threads(request.threads)
    method, network, tokens_in, num_prefix, depth = _method_and_model(request)
    dim = int(network.embed_dim)
    layer = depth // 2
    block = network.blocks[layer]
    probe = probe_of(method, num_prefix)
    points = curve_points(tokens_in, num_prefix, request.points)
    items: dict[str, _Timed] = {}
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="vitprune-plan-") as folder:
        folder = Path(folder)

        def prepare(counts: list[int]) -> dict[str, _Timed]:
            prepared = {}
            for n in counts:
                example = torch.randn((request.batch, n, dim), generator=generator)
                for kind in planner.CURVES:
                    say(f"preparing {kind} at {n} tokens")
                    part = block_part(block, method, n, probe(n), num_prefix, layer, kind)
                    prepared[f"{kind}:{n}"] = _prepare(
                        part, example, request.backend, request.threads, folder, f"{kind}_{n}", request.clock
                    )
            return prepared

        items.update(prepare(points))
        say("preparing the unpruned model")
        unpruned = apply_method(network, "none")
        if request.backend in ONNX_BACKENDS:
            path = export_onnx(unpruned, folder / "unpruned.onnx", batch=request.batch, check=False).path
            items["unpruned"] = prepare_onnx_file(path, request.threads, request.clock, request.backend, request.batch)
        else:
            images = torch.randn((request.batch, *tuple(PruningRecord.from_model(unpruned).input_size)))
            items["unpruned"] = _prepare(
                unpruned, images, request.backend, request.threads, folder, "unpruned", request.clock
            )
        medians = time_interleaved(items, request.warmup, request.iterations, request.rounds, say, request.statistic)
        # find the steps: bisect the segments where the block curve jumps or falls (two points at a time)
        for _ in range(request.refine):
            curve = planner.Curve(tuple(points), tuple(medians[f"block:{n}"] for n in points))
            found = set(planner.points_to_refine(curve)) - set(points)
            if not found:
                break
            say(f"a step between measured counts: measuring {', '.join(map(str, sorted(found)))} tokens too")
            extra = prepare(sorted(found))
            medians.update(
                time_interleaved(extra, request.warmup, request.iterations, request.rounds, say, request.statistic)
            )
            points = sorted(set(points) | found)
    curves = {kind: {"tokens": points, "ms": [medians[f"{kind}:{n}"] for n in points]} for kind in planner.CURVES}
    unpruned_ms = medians["unpruned"]
    from ..portable.environment import describe_machine

    data = {
        "schema": CURVE_SCHEMA,
        "model": request.model,
        "method": request.method,
        "method_options": method.knob_values(),
        "backend": request.backend,
        "batch": request.batch,
        "threads": request.threads,
        "tokens_in": tokens_in,
        "num_prefix": num_prefix,
        "depth": depth,
        "layer": layer,
        "probe_share": PROBE_SHARE,
        "max_remove": max_remove_name(method, tokens_in, num_prefix),
        "curves": curves,
        "unpruned_ms": unpruned_ms,
        "fixed_ms": unpruned_ms - depth * curves["block"]["ms"][-1],
        "warmup": request.warmup,
        "iterations": request.iterations,
        "rounds": request.rounds,
        "statistic": request.statistic,
        "clock": request.clock,
        "environment": describe_machine(),
        "created": now_iso(),
    }
    if request.calibrate:
        data.update(_calibrate(request, data, method, say))
    return data


def _calibrate(request: PlanRequest, data: dict[str, Any], method, say) -> dict[str, Any]:
    """Measure the model at one uniform rate beside the unpruned one and scale the reduction step's cost so
    the model predicts it: a step measured on its own (a separate graph, nothing fused around it) can cost
    more or less than inside the model."""
    from ..pruning.schedule import build_schedule

    model, _ = cost_model(data)
    tokens_in, depth, num_prefix = data["tokens_in"], data["depth"], data["num_prefix"]
    unpruned = model.total(tokens_in, [tokens_in] * depth)

    def uniform(rate: float):
        return build_schedule(tokens_in, num_prefix, depth, rate=rate, method=method)

    rate = min(
        (r / 100 for r in range(1, 40)),
        key=lambda r: abs(model.total(tokens_in, uniform(r).tokens_out) - unpruned / CALIBRATION_SPEEDUP),
    )
    schedule = uniform(rate)
    say(f"calibrating the reduction step on the uniform rate {rate:g}")
    measured, measured_unpruned = measure_plan(request, list(schedule.removed))
    target = measured / measured_unpruned * unpruned
    scale = planner.calibrated_reduction_scale(model, tokens_in, schedule.tokens_out, target)
    return {
        "reduction_scale": scale,
        "calibration": {"rate": rate, "measured_ms": measured, "measured_unpruned_ms": measured_unpruned},
    }


def prepare_onnx_file(
    path: Path, threads: int | None, clock: str = "wall", backend: str = "ort-cpu", batch: int = 1
) -> _Timed:
    """One query of an ONNX file on ``backend`` (ONNX Runtime or OpenVINO), as a timed callable."""
    from .runners import get_runner

    runner = get_runner(backend, threads=threads)
    runner.load(path, batch=batch)
    if backend == "ort-cpu":
        return _Timed(lambda: runner.session.run(None, runner.feed), clock=clock)
    return _Timed(lambda: runner.request.infer(runner.feed), clock=clock)


def load_curves(path: Path) -> dict[str, Any] | None:
    """A cached curves file, or None when it is missing or not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == CURVE_SCHEMA else None


def cost_model(curves: dict[str, Any], max_rate: float = 1.0) -> tuple[planner.CostModel, Any]:
    """The planner's cost model and max-remove rule from a curves JSON (measured here or on a device)."""
    num_prefix = int(curves["num_prefix"])
    rule = planner.named_max_remove(curves.get("max_remove", "all"), num_prefix)
    model = planner.CostModel(
        *(planner.Curve.from_points(curves["curves"][kind]) for kind in planner.CURVES),
        probe=planner.probe_rule(float(curves.get("probe_share", PROBE_SHARE)), num_prefix, rule),
        fixed_ms=float(curves["fixed_ms"]),
        reduction_scale=float(curves.get("reduction_scale", 1.0)),
    )

    def limit(tokens: int) -> int:
        return max(0, min(rule(tokens), math.floor(max_rate * tokens)))

    return model, limit


# ---------------------------------------------------------------- weights


def sensitivity_weights(path: Path, depth: int) -> list[float]:
    """Block weights from ``vitprune adjust``'s output: its ``sensitivity`` list when present, else its ``rates``
    (:func:`..portable.plan.weights_from_rates`)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise VitPruneError(f"sensitivity file {str(path)!r} does not exist") from None
    except (OSError, ValueError) as error:
        raise VitPruneError(f"sensitivity file {str(path)!r} is not JSON ({error})") from None
    values = data.get("sensitivity") if isinstance(data, dict) else None
    if values is None and isinstance(data, dict) and data.get("rates") is not None:
        values = planner.weights_from_rates([float(r) for r in data["rates"]])
    if not isinstance(values, list) or not all(isinstance(v, (int, float)) and v > 0 for v in values):
        raise VitPruneError(
            f"sensitivity file {str(path)!r} has neither a 'sensitivity' list of positive numbers nor the 'rates' "
            "of 'vitprune adjust'"
        )
    if len(values) != depth:
        raise VitPruneError(f"sensitivity file {str(path)!r} has {len(values)} entries for {depth} blocks")
    return [float(v) for v in values]


# ---------------------------------------------------------------- the plan


def default_schedule_path(request: PlanRequest, device: str) -> Path:
    goal = f"{request.latency_ms:g}ms" if request.latency_ms is not None else f"x{request.speedup:g}"
    name = f"{slug(request.model)}_{slug(request.method)}_{request.backend}_b{request.batch}_{goal}.json"
    return Path(request.results_root) / slug(device) / "plans" / name


def check_request(request: PlanRequest) -> None:
    if (request.latency_ms is None) == (request.speedup is None):
        raise VitPruneError("give one budget: --latency-ms MS or --speedup X")
    if request.latency_ms is not None and not (math.isfinite(request.latency_ms) and request.latency_ms > 0):
        raise VitPruneError(f"--latency-ms must be a positive number of milliseconds, got {request.latency_ms!r}")
    if request.speedup is not None and not (math.isfinite(request.speedup) and request.speedup >= 1):
        raise VitPruneError(f"--speedup must be ≥ 1 (1.5 = one and a half times as fast), got {request.speedup!r}")
    if not (0 < request.max_rate < 1):
        raise VitPruneError(f"--max-rate must be in (0, 1), got {request.max_rate!r}")
    if request.statistic not in STATISTICS:
        raise VitPruneError(f"--statistic must be one of {', '.join(STATISTICS)}, not {request.statistic!r}")
    if request.clock not in CLOCKS:
        raise VitPruneError(f"--clock must be one of {', '.join(CLOCKS)}, not {request.clock!r}")
    if request.clock == "cpu" and (request.threads != 1 or request.backend == "torch-cuda"):
        raise VitPruneError("--clock cpu times this thread's CPU: use it with --threads 1 on ort-cpu or torch-cpu")
    if request.batch < 1:
        raise VitPruneError(f"--batch must be ≥ 1, got {request.batch}")
    _check_backend(request.backend)


def _check_backend(backend: str) -> None:
    if backend not in PLAN_BACKENDS:
        raise VitPruneError(
            f"vitprune plan measures on {', '.join(PLAN_BACKENDS)}, not {backend!r}; TensorRT curves are measured "
            "on the device: 'vitprune bundle ONNX --plan', then plan.sh there (or 'vitprune deploy --plan-speedup')"
        )


def plan_schedule(request: PlanRequest, say=lambda message: None) -> PlanOutcome:
    """Measure (or read the cached) curves, plan, write the schedule, and measure the planned model."""
    from ..files import check_output
    from ..pruning.schedule import build_schedule, save_schedule
    from ..pruning.spec import resolve_method

    check_request(request)
    resolve_method(request.method, request.knobs)  # a bad method or knob fails before any measuring
    if request.sensitivity is not None and not Path(request.sensitivity).is_file():
        raise VitPruneError(f"sensitivity file {str(request.sensitivity)!r} does not exist")
    device = _default_device(request)
    output = check_output(  # an output in the way or unwritable fails before any measuring
        request.output or default_schedule_path(request, device), "--output", force=request.force, suffix=".json"
    )
    path = curves_path(request, device)
    curves = None if request.remeasure else load_curves(path)
    cached = curves is not None
    if curves is None:
        curves = measure_curves(request, say)
        atomic_write_text(path, json.dumps(curves, indent=2) + "\n")
    model, limit = cost_model(curves, request.max_rate)
    depth, tokens_in, num_prefix = int(curves["depth"]), int(curves["tokens_in"]), int(curves["num_prefix"])
    weights = sensitivity_weights(request.sensitivity, depth) if request.sensitivity else None
    unpruned = model.total(tokens_in, [tokens_in] * depth)
    budget = request.latency_ms if request.latency_ms is not None else unpruned / request.speedup
    try:
        plan = planner.plan_keep_counts(model, tokens_in, depth, num_prefix, budget, limit, weights)
    except planner.PlanError as error:
        raise VitPruneError(str(error)) from None
    schedule = build_schedule(
        tokens_in, num_prefix, depth, removed=plan.removed, method=resolve_method(request.method, request.knobs)
    )
    outcome = PlanOutcome(plan, output, path, cached, keep_counts=list(schedule.tokens_out))
    if request.verify:
        say("measuring the planned model beside the unpruned one")
        outcome.measured_ms, outcome.measured_unpruned_ms = measure_plan(request, list(schedule.removed))
    planned = {
        **plan.to_dict(),
        "model": request.model,
        "method": request.method,
        "method_options": curves.get("method_options", {}),
        "backend": request.backend,
        "device": device,
        "batch": request.batch,
        "threads": request.threads,
        "budget": {"latency_ms": request.latency_ms, "speedup": request.speedup},
        "max_rate": request.max_rate,
        "statistic": request.statistic,
        "clock": request.clock,
        "weights_from": str(request.sensitivity) if request.sensitivity else "early blocks first",
        "curves": str(path),
        "measured_ms": outcome.measured_ms,
        "measured_unpruned_ms": outcome.measured_unpruned_ms,
        "created": now_iso(),
    }
    save_schedule(output, schedule, planned=planned)
    return outcome


def measure_plan(request: PlanRequest, removed: list[int], rounds: int | None = None) -> tuple[float, float]:
    """Median ms of the model pruned with ``removed`` and of the unpruned model, timed interleaved."""
    import torch

    from ..export.onnx import export_onnx
    from ..pruning.models import CLI_RANDOM_SEED, create_model
    from ..pruning.patch import apply_method
    from ..pruning.spec import resolve_method
    from ..record import PruningRecord

    items: dict[str, _Timed] = {}
    with tempfile.TemporaryDirectory(prefix="vitprune-plan-check-") as folder:
        for name, method, schedule in (("planned", request.method, removed), ("unpruned", "none", None)):
            network = create_model(request.model, request.weights, seed=CLI_RANDOM_SEED)
            network = apply_method(
                network, resolve_method(method, request.knobs if method != "none" else {}), schedule=schedule
            ).eval()
            if request.backend in ONNX_BACKENDS:
                with contextlib.redirect_stdout(None):
                    path = export_onnx(network, Path(folder) / f"{name}.onnx", batch=request.batch, check=False).path
                items[name] = prepare_onnx_file(path, request.threads, request.clock, request.backend, request.batch)
            else:
                images = torch.randn((request.batch, *tuple(PruningRecord.from_model(network).input_size)))
                items[name] = _prepare(
                    network, images, request.backend, request.threads, Path(folder), name, request.clock
                )
        medians = time_interleaved(
            items, request.warmup, request.iterations, rounds or request.rounds, lambda m: None, request.statistic
        )
    return medians["planned"], medians["unpruned"]


__all__ = [
    "PlanOutcome",
    "PlanRequest",
    "cost_model",
    "curve_points",
    "curves_path",
    "load_curves",
    "measure_curves",
    "measure_plan",
    "plan_schedule",
    "prepare_onnx_file",
    "sensitivity_weights",
    "time_interleaved",
]
