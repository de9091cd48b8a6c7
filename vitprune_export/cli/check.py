"""``vitprune check``: what this machine can do (libraries, GPU, TensorRT, nvcc, plugins, profiles)."""

from __future__ import annotations

from .app import command, console, print_json
from .options import JsonOption


@command("check")
def check(json: JsonOption = False) -> None:
    """Report Python, PyTorch and CUDA, GPUs, ONNX Runtime providers, TensorRT, nvcc, the plugin library, and
    which device profiles can build an engine here.

    Example: vitprune check --json
    """
    from ..measure.machine_check import check_machine, report_lines

    report = check_machine()
    if json:
        print_json(report)
        return
    width = max(len(what) for what, _, _ in report_lines(report))
    for what, finding, fine in report_lines(report):
        mark = "[green]✓[/]" if fine else "[yellow]–[/]"
        console.print(f"{mark} {what:<{width}}  {finding}", highlight=False)
