"""``vitprune``: a thin Typer layer over :mod:`vitprune_export`; one module per command."""

from __future__ import annotations

import importlib

from .app import app

# One module per command, in the order `vitprune --help` lists them; importing one registers it.
_COMMAND_MODULES = (
    "methods",
    "export",
    "flops",
    "rewrite",
    "quantize",
    "plugins",
    "build",
    "bundle",
    "deploy",
    "profile",
    "plan",
    "bench",
    "compare",
    "eval",
    "finetune",
    "adjust",
    "check",
)

for _module in _COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    app(prog_name="vitprune")


__all__ = ["app", "main"]
