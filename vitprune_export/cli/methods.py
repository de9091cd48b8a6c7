"""``vitprune methods``: the registered methods, their papers, knobs and TensorRT status."""

from __future__ import annotations

from rich.table import Table

from .app import command, console, print_json
from .options import JsonOption


@command("methods")
def methods(json: JsonOption = False) -> None:
    """List the token-reduction methods: paper, knobs (CLI options) and how they run on TensorRT."""
    from ..pruning.methods import list_methods, method_class

    rows = [method_class(name).describe() for name in list_methods()]
    if json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False, title="vitprune methods", caption="papers, TensorRT details: --json")
    table.add_column("method", no_wrap=True)
    table.add_column("what it does", ratio=3)
    table.add_column("options", ratio=2)
    table.add_column("TensorRT plugin", no_wrap=True)
    for name, row in zip(list_methods(), rows):
        knobs = " ".join(f"{knob.flag} {knob.default}" for knob in method_class(name).knobs) or "—"
        plugin = (
            row["tensorrt"].split("--plugin-nodes: one ", 1)[1].split()[0]
            if "--plugin-nodes: one " in row["tensorrt"]
            else "—"
        )
        table.add_row(row["name"], row["summary"], knobs, plugin)
    console.print(table)
