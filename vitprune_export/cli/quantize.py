"""``vitprune quantize``: an exported fp32 ONNX → explicit Q/DQ INT8 (or FP8) ONNX, calibrated on real images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import command, console, print_json, print_next
from .options import ForceOption, JsonOption


@command("quantize", no_args_is_help=True)
def quantize(
    input_path: Annotated[Path, typer.Argument(metavar="IN.onnx", help="fp32 ONNX file from 'vitprune export'.")],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            help="Calibration images: 'digits', 'digits-canvas' or an image folder (ImageFolder, ImageNet's val/); "
            "its training split is used.",
        ),
    ] = "digits",
    images: Annotated[int, typer.Option("--images", "-n", help="How many calibration images.")] = 256,
    method: Annotated[
        str, typer.Option("--method", help="Calibration: minmax, entropy (KL, as TensorRT) or percentile.")
    ] = "minmax",
    precision: Annotated[
        str, typer.Option("--precision", help="int8, or fp8 (e4m3; GPUs of SM89 and newer).")
    ] = "int8",
    attention_matmuls: Annotated[
        bool,
        typer.Option(
            "--attention-matmuls/--no-attention-matmuls",
            help="Also quantize the attention products outside the token-score path.",
        ),
    ] = False,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="ONNX file to write \\[default: IN_<precision>.onnx].")
    ] = None,
    force: ForceOption = False,
    json: JsonOption = False,
) -> None:
    """Quantize an exported model: symmetric Q/DQ on the linear layers, token scores kept in float.

    Example: vitprune quantize engines/tiny_topk.onnx --data digits -o engines/tiny_topk_int8.onnx
    """
    import onnx

    from ..accuracy.calibration import calibration_batches, calibration_set
    from ..accuracy.evaluate import _progress
    from ..export.quantize import check_method, check_quantizable, quantize_onnx
    from ..files import check_output
    from ..record import check_onnx_input

    check_method(method, precision)
    check_onnx_input(input_path)
    output = output or input_path.with_name(f"{input_path.stem}_{precision}.onnx")
    check_output(output, "-o", force=force, suffix=".onnx")
    record = check_quantizable(onnx.load(str(input_path), load_external_data=False), input_path)
    with console.status("loading the calibration images…"):
        dataset = calibration_set(data, record, images)
    progress = _progress(not json, "calibrating")
    with progress:
        task = progress.add_task("calibrating", total=len(dataset))
        report = quantize_onnx(
            input_path,
            output,
            calibration_batches(dataset),
            data=dataset.name,
            method=method,
            precision=precision,
            attention_matmuls=attention_matmuls,
            force=force,
            on_batch=lambda count: progress.update(task, advance=count),
        )
    summary = {
        "path": str(report.path),
        "precision": report.precision,
        "calibration": {"data": report.data, "images": report.images, "method": report.method},
        "quantized_nodes": report.quantized_nodes,
        "float_nodes": report.float_nodes,
        "seconds": report.seconds,
    }
    if json:
        print_json(summary)
        return
    console.print(
        f"[bold]{report.precision}[/] {report.quantized_nodes} linear layers quantized, {report.float_nodes} "
        f"nodes kept in float (token scores, Softmax, LayerNorm); calibrated ({report.method}) on "
        f"{report.images} images of {report.data}"
    )
    console.print(f"[green]wrote[/] {report.path} in {report.seconds:.1f} s")
    print_next(["eval", report.path, "--checkpoint", "CHECKPOINT.pt", "--data", data])
