"""``vitprune build``: ONNX + device profile (+ plugin library) → TensorRT engine and its JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import command, console, err_console, print_json, print_next
from .options import ForceOption, JsonOption


@command("build", no_args_is_help=True)
def build(
    onnx: Annotated[Path, typer.Argument(help="ONNX file from 'vitprune export' (or 'vitprune rewrite').")],
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            "-p",
            help="Device profile: a shipped name (rtx4090, rtx-generic, h100, jetson-orin-nano) or a .toml path.",
        ),
    ],
    plugins: Annotated[
        Optional[Path],
        typer.Option("--plugins", help="Plugin library (libvitprune_plugins.so) for ONNX files with plugin nodes."),
    ] = None,
    fp16: Annotated[Optional[bool], typer.Option("--fp16/--fp32", help="Override the profile's precision.")] = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Engine file (default: engines/<onnx>_<profile>_<precision>.engine)."),
    ] = None,
    timing_cache: Annotated[
        Optional[Path],
        typer.Option("--timing-cache", help="Timing cache file, read and updated (default: the profile's)."),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the builder settings for the installed TensorRT (or the profile's) and stop."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="TensorRT's verbose log.")] = False,
    force: ForceOption = False,
    json: JsonOption = False,
) -> None:
    """Build a TensorRT engine for a device profile; write the engine and a JSON beside it.

    Example: vitprune build engines/vit_small_patch16_224_topk-vpa_r0.06.onnx --profile rtx4090
    """
    if dry_run:
        _dry_run(onnx, profile, fp16, timing_cache, json)
        return
    from ..tensorrt.build import build_engine

    with console.status(f"building a TensorRT engine from {onnx} for profile {profile} (this takes minutes)…"):
        result = build_engine(
            onnx,
            profile,
            output=output,
            plugins=plugins,
            fp16=fp16,
            timing_cache=timing_cache,
            verbose=verbose,
            force=force,
        )
    summary = {
        "engine": str(result.path),
        "json": str(result.json_path),
        "size_mb": result.size_bytes / 1e6,
        "seconds": result.seconds,
        "gpu": result.gpu,
        "precision": result.settings.precision,
        "precision_source": result.settings.precision_source,
        "tensorrt": f"{result.settings.flavour} {result.settings.tensorrt_version}",
        "plugin_library": result.plugin_library,
        "timing_cache": result.timing_cache,
        "notes": result.settings.notes,
    }
    if json:
        print_json(summary)
        return
    for note in result.settings.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(f"[bold]TensorRT[/] {summary['tensorrt']} on {result.gpu or 'no GPU (ahead-of-time build)'}")
    console.print(f"[bold]precision[/] {result.settings.precision}: {result.settings.precision_source}")
    console.print(
        f"[green]wrote[/] {result.path} ({summary['size_mb']:.1f} MB) and {result.json_path} in {result.seconds:.1f} s"
    )
    print_next(["profile", result.path, "--backend", "trt"])


def _dry_run(onnx: Path, profile_name: str, fp16: bool | None, timing_cache: Path | None, json: bool) -> None:
    from ..tensorrt.build import describe_build

    settings, origin, profile = describe_build(onnx, profile_name, fp16, timing_cache)
    if json:
        print_json(settings.to_dict())
        return
    from rich.table import Table

    table = Table(
        title=f"builder settings: {onnx.name} · {profile.name} · {settings.flavour} {settings.tensorrt_version} ({origin})"
    )
    table.add_column("setting")
    table.add_column("value")
    for key, value in settings.to_dict().items():
        if key == "fp32_layers":
            table.add_row(key, f"{len(value)} ONNX nodes kept fp32 (LayerNorm, Softmax, token scores, merge divisions)")
        elif key != "notes":
            table.add_row(key, str(value))
    console.print(table)
    for note in settings.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
