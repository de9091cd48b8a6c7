"""``vitprune``: a thin Typer layer over :mod:`vitprune_export`; one module per command."""

from __future__ import annotations

import importlib

from .app import app

# One module per command; a module not present in this checkout is skipped.
_COMMAND_MODULES = (
    "methods", "export", "flops", "rewrite", "plugins", "build", "bundle",
    "profile", "compare", "eval", "finetune", "adjust",
)

for _module in _COMMAND_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_module}")
    except ModuleNotFoundError as _error:
        if _error.name != f"{__name__}.{_module}":
            raise


def main() -> None:
    app(prog_name="vitprune")


__all__ = ["app", "main"]
