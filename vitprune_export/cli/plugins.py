"""``vitprune plugins build``: compile the TensorRT plugins (or only their CUDA kernels) with CMake."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import app, console, print_json, print_next, run_command

plugins_app = typer.Typer(no_args_is_help=True, help="Build the vitprune TensorRT plugin library.")
app.add_typer(plugins_app, name="plugins")


def _user_errors_exit_2(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return run_command(fn, *args, **kwargs)

    return wrapper


@plugins_app.command("build")
@_user_errors_exit_2
def build(
    arch: Annotated[
        Optional[str], typer.Option("--arch", help="CUDA SM architectures, comma-separated \\[default: 87,89,90].")
    ] = None,
    tensorrt_root: Annotated[
        Optional[Path], typer.Option("--tensorrt-root", help="TensorRT install folder (with include/NvInferRuntime.h).")
    ] = None,
    kernels_only: Annotated[
        bool,
        typer.Option(
            "--kernels-only", help="Build only the CUDA kernels (libvitprune_kernels.so); no TensorRT needed."
        ),
    ] = False,
    build_dir: Annotated[
        Optional[Path],
        typer.Option("--build-dir", help="CMake build folder \\[default: build/plugins under the working directory]."),
    ] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Parallel compile jobs.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Build libvitprune_plugins.so (VitPruneTopKSelect, VitPruneVPA, VitPruneToMeMerge) with CMake.

    Example: vitprune plugins build --arch 87 --tensorrt-root /usr/src/tensorrt
    """
    from ..export.ops.plugin_library import build_plugin_library, parse_arches

    arches = parse_arches(arch)
    with console.status("building the plugins…") as status:
        result = build_plugin_library(
            build_dir=build_dir,
            arches=arches,
            tensorrt_root=tensorrt_root,
            kernels_only=kernels_only,
            jobs=jobs,
            on_stage=lambda stage: status.update(f"{stage}…"),
        )
    summary = {
        "library": str(result.library),
        "arches": list(result.arches),
        "kernels_only": result.kernels_only,
        "tensorrt_include": str(result.tensorrt_include) if result.tensorrt_include else None,
        "seconds": result.seconds,
    }
    if json:
        print_json(summary)
        return
    console.print(f"[green]built[/] {result.library} for sm_{', sm_'.join(result.arches)} in {result.seconds:.1f} s")
    if result.kernels_only:
        console.print("kernels only: callable through their C ABI (see plugins/README.md); no TensorRT plugin library")
    else:
        print_next(
            ["export", "--method", "topk-vpa", "--rate", "0.06", "--plugin-nodes"],
            [
                "build",
                "engines/vit_small_patch16_224_topk-vpa_r0.06_plugins.onnx",
                "--profile",
                "rtx4090",
                "--plugins",
                result.library,
            ],
        )
