"""``vitprune profile``: latency of an ONNX file, an engine or a model spec on one backend → results JSON."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import VitPruneError
from .app import command, console, print_json
from .options import BatchOption, JsonOption, RateOption, RatesOption, ScheduleOption, WeightsOption, with_method_knobs

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@command("profile")
@with_method_knobs
def profile(
    target: Annotated[
        Optional[Path],
        typer.Argument(help="ONNX file (ort-cpu, or torch-* rebuilt from its metadata), engine (trt); leave out for --model …"),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="torch-cpu | torch-cuda | ort-cpu | trt.")] = "ort-cpu",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="timm model name (model spec; on ort-cpu it is exported to a temporary ONNX file first).")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="Token-reduction method of the model spec (default: none).")] = None,
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    weights: WeightsOption = "random",
    batch: BatchOption = 1,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed queries first.")] = 20,
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed queries.")] = 100,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads (intra-op) [default: the runtime's].")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="Half precision (torch-cuda; trt: label of an fp16 engine).")] = False,
    plugins: Annotated[Optional[Path], typer.Option("--plugins", help="TensorRT plugin library [default: plugins/build/libvitprune_plugins.so].")] = None,
    device_name: Annotated[Optional[str], typer.Option("--device-name", help="Folder/column name [default: e.g. cpu-2core, h100-80gb-hbm3, jetson-orin-nano].")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Result JSON [default: profiles/results/<device>/<model>_<method>_<rate>_<backend>_b<batch>.json].")] = None,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Measure latency (warm-up, timed queries; CUDA events on GPU) and write a results JSON.

    Examples: vitprune profile engines/vit_small_patch16_224_topk_r0.06.onnx --backend ort-cpu;
    vitprune profile --backend torch-cpu --model vit_small_patch16_224 --method topk --rate 0.06;
    vitprune profile --backend ort-cpu --method none   (the baseline for 'vitprune compare')
    """
    from ..measure.profile import profile as measure_profile
    from ..measure.results import default_result_path, write_result
    from ..measure.runners import TORCH_BACKENDS, get_runner

    options = {"plugin_library": plugins} if backend == "trt" else {}
    if plugins is not None and backend != "trt":
        raise VitPruneError("--plugins is for --backend trt only")
    runner = get_runner(backend, threads=threads, precision="fp16" if fp16 else "fp32", **options)
    spec_given = any(v is not None for v in (model, method, rate, rates, schedule)) or bool(knobs)
    with contextlib.ExitStack() as cleanup:
        if target is None:
            if backend == "trt":
                raise VitPruneError("backend 'trt' needs a TARGET: an engine file (vitprune build)")
            loaded_target, model_name = _model_from_spec(model, method or "none", rate, rates, schedule, weights, knobs or {})
            if backend not in TORCH_BACKENDS:  # ort-cpu runs a file: export the spec to a temporary one
                folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="vitprune-profile-")))
                loaded_target = _export_spec(loaded_target, folder / "model.onnx", batch, model_name)
        else:
            if spec_given:
                raise VitPruneError("give either a TARGET file or a model spec (--model/--method/--rate …), not both")
            if not target.is_file():
                raise VitPruneError(f"TARGET {str(target)!r} does not exist")
            loaded_target, model_name = _file_target(target, backend, weights)
        result = measure_profile(
            runner, loaded_target, batch=batch, warmup=warmup, iterations=iters, device=device_name,
            model_name=model_name, progress=not json,
        )
    path = output or default_result_path(result)
    write_result(path, result)
    if json:
        print_json({**result, "path": str(path)})
        return
    stats = result["latency_ms"]
    console.print(
        f"[bold]{result['model']}[/] / {result['method']}"
        + (f" r={result['rate']:g}" if result["rate"] is not None else "")
        + f" on {result['device']} {backend} ({result['precision']}, batch {batch}, {result['environment'].get('threads')} threads)"
    )
    console.print(
        f"[bold]latency[/] median {stats['median']:.3f} ms, mean {stats['mean']:.3f}, p90 {stats['p90']:.3f}, "
        f"p99 {stats['p99']:.3f}, std {stats['std']:.3f} (min {stats['min']:.3f}, max {stats['max']:.3f}) "
        f"over {iters} queries after {warmup} warm-up; {result['images_per_s']:.1f} images/s"
    )
    if result.get("macs"):
        console.print(f"[bold]MACs[/] {result['macs'] / 1e9:.3f} G" + (f" (unpruned {result['baseline_macs'] / 1e9:.3f} G)" if result.get("baseline_macs") else ""))
    if result.get("note"):
        console.print(f"[yellow]note:[/] {result['note']}")
    console.print(f"[green]wrote[/] {path}")
    console.print(f"next: vitprune compare {Path(path).parent}")


def _model_from_spec(model, method, rate, rates, schedule, weights, knobs):
    from ..pruning.models import DEFAULT_MODEL
    from ..pruning.spec import build_pruned_model

    name = model or DEFAULT_MODEL
    with console.status("building the pruned model…"):
        network = build_pruned_model(name, method, rate, rates, schedule, weights, knobs)
    return network, name


def _export_spec(network, path: Path, batch: int, model_name: str) -> Path:
    """A model spec as a parity-checked ONNX file at ``path``, with the metadata ``vitprune export`` writes."""
    from ..export.onnx import export_onnx
    from ..pruning.flops import count_macs

    extra = {"macs": count_macs(network).macs, "baseline_macs": count_macs(network, unpruned=True).macs}
    with console.status("exporting the model spec to ONNX for ONNX Runtime…"):
        export_onnx(network, path, batch=batch, model_name=model_name, extra_metadata=extra)
    return path


def _file_target(target: Path, backend: str, weights: str):
    """The thing the runner loads for a file TARGET; PyTorch backends rebuild the model from ONNX metadata."""
    from ..measure.runners import TORCH_BACKENDS

    is_engine = target.suffix.lower() in ENGINE_SUFFIXES
    if backend == "trt":
        if target.suffix.lower() == ".onnx":
            raise VitPruneError(f"--backend trt runs an engine; build one first: vitprune build {target}")
        return target, None
    if is_engine:
        raise VitPruneError(f"{str(target)!r} is a TensorRT engine; profile it with --backend trt")
    if backend in TORCH_BACKENDS:
        network = _model_from_onnx_metadata(target, weights)
        return network, read_model_name(target)
    return target, None


def _model_from_onnx_metadata(path: Path, weights: str):
    """The same model, method, knobs and schedule as an exported ONNX file, in PyTorch."""
    from ..export.onnx import read_metadata
    from ..pruning.patch import create_pruned, keep_counts
    from ..measure.runners.base import uniform_rate

    metadata = read_metadata(path)
    if not metadata.get("model") or not metadata.get("schedule"):
        raise VitPruneError(f"{str(path)!r} has no vitprune metadata; profile a model spec with --model/--method/--rate instead")
    rate = uniform_rate(metadata["schedule"])
    how = {"rate": rate} if rate is not None else {"schedule": list(metadata["schedule"]["removed"])}
    with console.status("rebuilding the model from the ONNX metadata…"):
        network = create_pruned(metadata["model"], metadata["method"], weights=weights, **how, **(metadata.get("method_options") or {}))
    if keep_counts(network) != list(metadata.get("keep_counts") or keep_counts(network)):
        raise VitPruneError(f"rebuilding {str(path)!r} in PyTorch gave other keep counts than its metadata; re-export it")
    return network


def read_model_name(path: Path) -> str | None:
    from ..export.onnx import read_metadata

    return read_metadata(path).get("model")
