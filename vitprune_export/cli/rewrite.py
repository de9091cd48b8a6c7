"""``vitprune rewrite``: plugin nodes ⇄ standard ONNX ops (onnx-graphsurgeon)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..export.parity import DEFAULT_PARITY_TOLERANCE
from .app import command, console, print_json, print_next
from .options import ForceOption, JsonOption


@command("rewrite", no_args_is_help=True)
def rewrite(
    input_path: Annotated[
        Path, typer.Argument(metavar="IN.onnx", help="ONNX file from 'vitprune export --plugin-nodes' (or a rewrite).")
    ],
    to: Annotated[
        str, typer.Option("--to", help="plugins: TensorRT plugin nodes; standard: plain ONNX ops, no plugins needed.")
    ] = "standard",
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="ONNX file to write \\[default: IN_<to>.onnx].")
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check/--no-check", help="onnx.checker, forbidden ops, and ONNX Runtime parity of IN vs OUT."),
    ] = True,
    atol: Annotated[
        float, typer.Option("--atol", help="Parity bound (max |Δ| of the logits).")
    ] = DEFAULT_PARITY_TOLERANCE,
    force: ForceOption = False,
    json: JsonOption = False,
) -> None:
    """Turn vitprune plugin nodes into standard ONNX ops, or normalise them into TensorRT plugin nodes.

    Example: vitprune rewrite engines/model_plugins.onnx --to standard -o engines/model_standard.onnx
    """
    from ..export.rewrite import TARGETS, rewrite_onnx

    if to not in TARGETS:
        raise typer.BadParameter(f"must be one of {', '.join(TARGETS)}", param_hint="--to")
    output = output or input_path.with_name(f"{input_path.stem}_{to}.onnx")
    with console.status(f"rewriting {input_path} to {to} nodes and checking it…"):
        result = rewrite_onnx(input_path, output, to, check=check, atol=atol, force=force)
    summary = {
        "path": str(result.path),
        "to": to,
        "plugin_nodes_in": result.plugin_nodes_in,
        "plugin_nodes_out": result.plugin_nodes_out,
        "nodes": result.nodes_out,
        "parity_max_abs_diff": result.parity_max_abs_diff,
        "seconds": result.seconds,
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"[bold]plugin nodes[/] {result.plugin_nodes_in} → {result.plugin_nodes_out} ({result.nodes_out} nodes in all)"
    )
    if result.parity_max_abs_diff is not None:
        console.print(f"[bold]parity[/] max |IN − OUT| in ONNX Runtime = {result.parity_max_abs_diff:.2e}")
    console.print(f"[green]wrote[/] {result.path} in {result.seconds:.1f} s")
    if to == "plugins":
        print_next(["plugins", "build"], ["build", result.path, "--profile", "rtx-generic"])
    else:
        print_next(["build", result.path, "--profile", "rtx-generic"], comment="no plugin library needed")
