"""The Typer application and the one place errors become exit codes.

Commands register with :func:`command`, which wraps them so that a
:class:`~vitprune_export.errors.VitPruneError` prints one line on stderr
(``error: …``) and exits with code 2, without a traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
import warnings

import typer
from rich.console import Console

from ..errors import VitPruneError, VitPruneWarning

app = typer.Typer(
    name="vitprune",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Token-pruned Vision Transformers → static-shape ONNX → TensorRT plugins and engines → latency per device.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)

USER_ERROR = 2


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = str(message)
    if "RANDOM WEIGHTS" in text:
        err_console.print(f"[bold yellow on red] WARNING [/] [bold yellow]{text}[/]", highlight=False, soft_wrap=True)
    elif issubclass(category, VitPruneWarning):
        err_console.print(f"[bold yellow]note:[/] {text}", highlight=False, soft_wrap=True)


def command(name: str | None = None, **kwargs):
    """Register ``fn`` as a command; map VitPruneError to one line and exit code 2."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kw):
            logging.basicConfig(level=logging.ERROR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # library chatter (exporter, timm)
                warnings.filterwarnings("always", message=".*RANDOM WEIGHTS.*")
                warnings.filterwarnings("always", category=VitPruneWarning)
                warnings.showwarning = _show_warning
                try:
                    return fn(*args, **kw)
                except VitPruneError as error:
                    fail(str(error))
                except KeyboardInterrupt:
                    err_console.print("interrupted; nothing was written")
                    raise typer.Exit(130) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def print_json(data) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
