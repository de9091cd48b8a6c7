"""``vitprune profile``: latency of an ONNX file, an engine or a model spec on one backend → results JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .app import command, console, print_json, print_next
from .options import (
    BatchOption,
    ForceOption,
    JsonOption,
    RateOption,
    RatesOption,
    ScheduleOption,
    WeightsOption,
    either,
    with_method_knobs,
)


@command("profile")
@with_method_knobs
def profile(
    target: Annotated[
        Optional[Path],
        typer.Argument(
            help="ONNX file (ort-cpu, or torch-* rebuilt from its metadata), engine (trt); leave out for --model …"
        ),
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="torch-cpu | torch-cuda | ort-cpu | trt.")] = "ort-cpu",
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            help="timm model name (model spec; on ort-cpu it is exported to a temporary ONNX file first).",
        ),
    ] = None,
    method: Annotated[
        Optional[str], typer.Option("--method", help="Token-reduction method of the model spec (default: none).")
    ] = None,
    rate: RateOption = None,
    rates: RatesOption = None,
    schedule: ScheduleOption = None,
    weights: WeightsOption = "random",
    batch: BatchOption = 1,
    warm_up: Annotated[
        Optional[int], typer.Option("--warm-up", min=0, help="Untimed queries first \\[default: 20].")
    ] = None,
    warmup: Annotated[Optional[int], typer.Option("--warmup", min=0, hidden=True)] = None,
    iterations: Annotated[
        Optional[int], typer.Option("--iterations", min=1, help="Timed queries \\[default: 100].")
    ] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", min=1, hidden=True)] = None,
    threads: Annotated[
        Optional[int],
        typer.Option("--threads", min=1, max=1024, help="CPU threads (intra-op) \\[default: the runtime's]."),
    ] = None,
    spinning: Annotated[
        Optional[str],
        typer.Option("--spinning", help="ort-cpu: intra-op thread spinning on | off | auto \\[default: auto, tuned]."),
    ] = None,
    graph_optimization: Annotated[
        Optional[str],
        typer.Option(
            "--graph-optimization",
            help="ort-cpu: disable | basic | extended | all | auto \\[default: auto, tuned].",
        ),
    ] = None,
    fp16: Annotated[
        bool, typer.Option("--fp16", help="Half precision (torch-cuda; trt: label of an fp16 engine).")
    ] = False,
    plugins: Annotated[
        Optional[Path],
        typer.Option("--plugins", help="TensorRT plugin library \\[default: build/plugins/libvitprune_plugins.so]."),
    ] = None,
    device_name: Annotated[
        Optional[str],
        typer.Option(
            "--device-name", help="Folder/column name \\[default: e.g. cpu-2core, h100-80gb-hbm3, jetson-orin-nano]."
        ),
    ] = None,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            "-o",
            help="Result JSON \\[default: results/<device>/<model>_<method>_<rate>_<backend>_b<batch>.json].",
        ),
    ] = None,
    force: ForceOption = False,
    json: JsonOption = False,
    knobs: dict[str, Any] | None = None,
) -> None:
    """Measure latency (warm-up, timed queries; CUDA events on GPU) and write a results JSON.

    Examples: vitprune profile engines/vit_small_patch16_224_topk_r0.06.onnx --backend ort-cpu;
    vitprune profile --backend torch-cpu --model vit_small_patch16_224 --method topk --rate 0.06;
    vitprune profile --backend ort-cpu --method none   (the baseline for 'vitprune compare')
    """
    from ..errors import VitPruneError
    from ..files import check_output
    from ..measure.profile import ModelSpec, profile_target
    from ..measure.results import default_result_path, write_result

    if output is not None:
        check_output(output, "--output", force=force, suffix=".json")
    if device_name is not None and not any(character.isalnum() for character in device_name):
        raise VitPruneError(f"--device-name {device_name!r} names no folder; give a name such as rtx4090-desktop")

    warm_up = either(warm_up, warmup, "--warm-up", "--warmup", 20)
    iterations = either(iterations, iters, "--iterations", "--iters", 100)
    spec = ModelSpec(model, method, rate, rates, schedule, weights, dict(knobs or {}))
    result = profile_target(
        backend,
        target,
        spec,
        batch=batch,
        warmup=warm_up,
        iterations=iterations,
        threads=threads,
        fp16=fp16,
        plugins=plugins,
        device=device_name,
        progress=not json,
        status=console.status,
        runner_options={"spinning": spinning, "graph_optimization": graph_optimization},
    )
    path = output or default_result_path(result)
    check_output(path, "--output", force=force)
    write_result(path, result)
    if json:
        print_json({**result, "path": str(path)})
        return
    stats = result["latency_ms"]
    console.print(
        f"[bold]{result['model']}[/] / {result['method']}"
        + (f" r={result['rate']:g}" if result["rate"] is not None else "")
        + f" on {result['device']}, {backend}"
    )
    console.print(
        f"{result['precision']}, batch {batch}, {result['environment'].get('threads')} threads; "
        f"{iterations} queries after {warm_up} warm-up"
    )
    console.print(
        f"[bold]latency[/] median {stats['median']:.3f} ms, mean {stats['mean']:.3f}, std {stats['std']:.3f}; "
        f"{result['images_per_s']:.1f} images/s"
    )
    console.print(
        f"        p90 {stats['p90']:.3f}, p99 {stats['p99']:.3f}, min {stats['min']:.3f}, max {stats['max']:.3f}"
    )
    if result.get("macs"):
        console.print(
            f"[bold]MACs[/] {result['macs'] / 1e9:.3f} G"
            + (f" (unpruned {result['baseline_macs'] / 1e9:.3f} G)" if result.get("baseline_macs") else "")
        )
    if result.get("note"):
        console.print(f"[yellow]note:[/] {result['note']}")
    console.print(f"[green]wrote[/] {path}")
    folder = Path(path).parent
    compare = ["compare", folder]
    if not any(folder.glob(f"{result['model']}_none_*{backend}_b{batch}*.json")):  # compare needs the baseline
        baseline = ["profile", "--backend", backend, "--model", result["model"], "--method", "none"]
        baseline += ["--batch", str(batch)] if batch != 1 else []
        baseline += same_settings_options(result.get("settings") or {})  # the baseline measured as this run was
        baseline += ["--device-name", device_name] if device_name else []
        print_next(baseline, compare)
    else:
        print_next(compare)


def same_settings_options(settings: dict[str, Any]) -> list[str]:
    """The options that measure another model with ``settings`` (a result's chosen threads, spinning and graph
    optimisation), each value checked: a result file's text never reaches the printed command as it is."""
    from ..measure.runners.ort_runner import GRAPH_OPTIMIZATION_LEVELS

    options: list[str] = []
    threads = settings.get("threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and 1 <= threads <= 1024:
        options += ["--threads", str(threads)]
    if isinstance(settings.get("spinning"), bool):
        options += ["--spinning", "on" if settings["spinning"] else "off"]
    if settings.get("graph_optimization") in GRAPH_OPTIMIZATION_LEVELS:
        options += ["--graph-optimization", settings["graph_optimization"]]
    return options
