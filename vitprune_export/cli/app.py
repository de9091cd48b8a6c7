"""The Typer application and the one place errors become exit codes.

Commands register with :func:`command`, which wraps them so that a
:class:`~vitprune_export.errors.VitPruneError` prints one line on stderr
(``error: …``) and exits with code 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import shlex
import signal
import sys
import warnings

import typer
import typer.core
from rich.console import Console

from ..errors import VitPruneError, VitPruneWarning

try:  # recent Typer releases carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer on click
    from click import exceptions as click_errors

USER_ERROR = 2


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Click's usage errors (unknown option, bad value) as one ``error: …`` line like every other error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as error:  # `vitprune rewrite` alone: its help, already printed
            sys.exit(error.exit_code)
        except click_errors.ClickException as error:
            context = getattr(error, "ctx", None)
            where = f"; see '{context.command_path} -h'" if context is not None else ""
            message = error.format_message().replace("\n", " ").strip().rstrip(".")
            err_console.print(f"[bold red]error:[/] {message}{where}", highlight=False, soft_wrap=True, markup=True)
            sys.exit(USER_ERROR if isinstance(error, click_errors.UsageError) else error.exit_code)
        except typer.Abort:
            err_console.print("interrupted; nothing was written")
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="vitprune",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Token-pruned Vision Transformers → static-shape ONNX → TensorRT plugins and engines → latency per device.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


def _warning_console() -> Console:
    """stderr, unless a spinner is running on the terminal: then the spinner's console, which prints above it
    instead of over it."""
    return console if console.is_terminal and getattr(console, "_live_stack", None) else err_console


def _show_warning(message, category, filename, lineno, file=None, line=None):
    text = str(message)
    if "RANDOM WEIGHTS" in text:
        _warning_console().print(
            f"[bold yellow on red] WARNING [/] [bold yellow]{text}[/]", highlight=False, soft_wrap=True
        )
    elif issubclass(category, VitPruneWarning):
        _warning_console().print(f"[bold yellow]note:[/] {text}", highlight=False, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every temporary file and folder is removed on the way out."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def terminate_like_interrupt():
    """While a command runs, SIGTERM unwinds the stack (``finally`` blocks run) instead of killing the process."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def print_next(*commands, comment: str = "") -> None:
    """Print ``next: vitprune …`` as one unwrapped line that works when pasted: each argument quoted for the
    shell; several commands joined by ``&&``; ``comment`` after a shell ``#``."""
    text = " && ".join(shlex.join(["vitprune", *map(str, arguments)]) for arguments in commands)
    console.print(
        f"next: {text}" + (f"  # {comment}" if comment else ""), highlight=False, soft_wrap=True, markup=False
    )


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
                    with terminate_like_interrupt():
                        return fn(*args, **kw)
                except VitPruneError as error:
                    fail(str(error))
                except KeyboardInterrupt as interrupt:
                    err_console.print("interrupted; nothing was written")
                    raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None

        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def print_json(data) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
