"""``vitprune``: a thin Typer layer over :mod:`vitprune_export`; one module per command, imported only when
that command runs (the table is :mod:`.commands`)."""

from __future__ import annotations

from .app import app


def main() -> None:
    app(prog_name="vitprune")


__all__ = ["app", "main"]
