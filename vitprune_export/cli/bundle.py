"""``vitprune bundle``: a self-contained folder to build and measure an engine on a device (Jetson)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import command, console, print_json
from .options import JsonOption


@command("bundle", no_args_is_help=True)
def bundle(
    onnx: Annotated[Path, typer.Argument(help="ONNX file from 'vitprune export' (or 'vitprune rewrite').")],
    profile: Annotated[
        str, typer.Option("--profile", "-p", help="Device profile: a name (jetson-orin-nano, …) or a .toml path.")
    ] = "jetson-orin-nano",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder to write (must not exist unless --force).")
    ] = Path("bundles/jetson-orin-nano"),
    plugins_dir: Annotated[
        Optional[Path],
        typer.Option("--plugins-dir", help="Plugin sources to include \\[default: the ones shipped with vitprune]."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the folder if it holds an earlier bundle.")] = False,
    plan: Annotated[
        bool,
        typer.Option(
            "--plan", help="Also ship the block parts and plan.sh: plan keep counts from the device's own latency."
        ),
    ] = False,
    plan_points: Annotated[
        int, typer.Option("--plan-points", help="Token counts per curve with --plan (ViT-S: ~19 MB each).")
    ] = 5,
    json: JsonOption = False,
) -> None:
    """Write a folder with the ONNX, plugin sources, build.sh, profile.sh and a README for the device.

    Example: vitprune bundle engines/vit_small_patch16_224_topk-vpa_r0.06.onnx --profile jetson-orin-nano -o bundles/orin
    """
    from ..tensorrt.bundle import bundle as make_bundle

    with console.status(f"assembling the {profile} bundle…") as status:
        result = make_bundle(
            onnx,
            profile,
            output,
            plugins_dir=plugins_dir,
            force=force,
            plan_points=plan_points if plan else None,
            say=lambda message: status.update(message),
        )
    if json:
        print_json(
            {
                "path": str(result.path),
                "files": result.files,
                "builder": result.settings,
                "plugin_sources": result.plugin_sources,
            }
        )
        return
    console.print(
        f"[bold]builder[/] {result.settings['flavour']} {result.settings['tensorrt_version']}: "
        f"{result.settings['precision']} ({result.settings['precision_source']})"
    )
    if not result.plugin_sources:
        console.print("[yellow]note:[/] no plugin sources were found; the bundle builds the ONNX without plugins")
    console.print(f"[green]wrote[/] {result.path}/ ({len(result.files)} files)")
    then = " && ./plan.sh --speedup 1.5" if plan else ""
    console.print(
        f"on the device: copy {shlex.quote(str(result.path))} there, then run ./build.sh && ./profile.sh{then} in it "
        "(its README.md says more), or 'vitprune deploy' it",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )
