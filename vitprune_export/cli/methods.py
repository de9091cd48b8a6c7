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
    table = Table(title="vitprune methods", show_lines=False)
    for column in ("method", "what it does", "paper", "options", "TensorRT"):
        table.add_column(column, overflow="fold")
    for name, row in zip(list_methods(), rows):
        knobs = " ".join(f"{knob.flag} {knob.default}" for knob in method_class(name).knobs) or "—"
        table.add_row(row["name"], row["summary"], row["paper"], knobs, row["tensorrt"])
    console.print(table)
