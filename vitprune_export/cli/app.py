"""The Typer application and the one place errors become exit codes.

Commands register with :func:`command`, which wraps them so that a
:class:`~vitprune_export.errors.VitPruneError` prints one line on stderr
(``error: …``) and exits with code 2, without a traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
import logging
import shlex
import signal
import sys
import warnings

import typer
import typer.core
from rich.console import Console

from ..errors import VitPruneError, VitPruneWarning
from .commands import COMMANDS

try:  # recent Typer releases carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older Typer on click
    from click import exceptions as click_errors

USER_ERROR = 2


class _LazyCommands(typer.core.TyperGroup):
    """The commands of :data:`~.commands.COMMANDS`, each module imported only when its command runs.

    Listing them (``vitprune --help``) takes the table's summaries; resolving one (``vitprune export …``)
    imports its module, which registers it on :data:`app`, and turns that registration into a click command
    as Typer would have. A module whose import fails (a broken optional dependency) becomes a command that
    says so in one line, and every other command still works.
    """

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name):
        loaded = self.commands.get(cmd_name)
        if loaded is not None or cmd_name not in COMMANDS:
            return loaded
        return typer.core.TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].summary, help=None)

    def resolve_command(self, ctx, args):
        if args and args[0] in COMMANDS and args[0] not in self.commands:
            self.commands[args[0]] = _load_command(args[0])
        try:
            return super().resolve_command(ctx, args)
        except click_errors.UsageError as error:  # Typer suggests among loaded commands only: suggest among all
            matches = difflib.get_close_matches(args[0], list(COMMANDS)) if args else []
            if matches and "Did you mean" not in error.message:
                error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


def _load_command(name: str):
    """Import the module of command ``name`` and build its click command from what it registered."""
    from typer.main import get_command_from_info, get_group_from_info

    try:
        importlib.import_module(f"{__package__}.{COMMANDS[name].module}")
    except ImportError as error:
        return _unavailable_command(name, error)
    settings = {"pretty_exceptions_short": app.pretty_exceptions_short, "rich_markup_mode": app.rich_markup_mode}
    for info in app.registered_commands:
        if info.name == name:
            return get_command_from_info(info, **settings)
    for info in app.registered_groups:
        if info.name == name:
            return get_group_from_info(info, suggest_commands=app.suggest_commands, **settings)
    raise LookupError(f"vitprune_export.cli.{COMMANDS[name].module} registers no command {name!r}")


def _unavailable_command(name: str, error: ImportError):
    """A stand-in for a command whose module cannot be imported: one line, exit 2, whatever its arguments."""

    def explain():
        fail(
            f"'vitprune {name}' cannot start: {error}; reinstall vitprune with its dependencies "
            "(pip install -e \".[dev]\" -c constraints.txt) or see 'vitprune check'"
        )

    return typer.core.TyperCommand(
        name,
        callback=explain,
        short_help=COMMANDS[name].summary,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    )


class _OneLineUsageErrors(_LazyCommands):
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


@app.callback()
def _root() -> None:
    # A callback makes Typer build a group even before any command module is imported.
    pass


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2."""
    from rich.markup import escape

    # the message is text, never markup: "pip install 'vitprune[openvino]'" keeps its brackets
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(USER_ERROR)


def _warning_console() -> Console:
    """stderr, unless a spinner is running on the terminal: then the spinner's console, which prints above it
    instead of over it."""
    return console if console.is_terminal and getattr(console, "_live_stack", None) else err_console


def _show_warning(message, category, filename, lineno, file=None, line=None):
    from rich.markup import escape

    text = escape(str(message))
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


def run_command(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` as a command runs: a VitPruneError is one line and exit code 2; Ctrl-C or
    SIGTERM (raised like Ctrl-C, :func:`terminate_like_interrupt`) exits 130 or 143 with one line."""
    try:
        with terminate_like_interrupt():
            return fn(*args, **kwargs)
    except VitPruneError as error:
        fail(str(error))
    except KeyboardInterrupt as interrupt:
        err_console.print("interrupted; nothing was written")
        raise typer.Exit(143 if isinstance(interrupt, Terminated) else 130) from None


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
                return run_command(fn, *args, **kw)

        if name in COMMANDS:
            kwargs.setdefault("short_help", COMMANDS[name].summary)
        app.command(name, **kwargs)(wrapper)
        return fn

    return decorate


def print_json(data) -> None:
    """Machine-readable output for ``--json``: plain JSON on stdout."""
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
