"""Atomic file output for the package, and file-name-safe names.

The mechanics (temporary name beside the target, then rename) are
:mod:`.portable.files`, shared with device bundles; here a folder that cannot be
created or written becomes a one-line :class:`~vitprune_export.errors.VitPruneError`
before anything is written. A failed or interrupted command never leaves a
half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import VitPruneError
from .portable import files


def _check_parent(path: Path, option: str) -> None:
    """The folder of ``path`` can be made and written: its nearest existing ancestor is a writable folder."""
    parent = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise VitPruneError(
            f"cannot create folder {str(parent)!r} for {option}: {str(existing)!r} is a file; choose another {option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VitPruneError(f"folder {str(existing)!r} is not writable; choose another {option}")


def ensure_writable_dir(path: Path, option: str = "--output") -> None:
    """Create the parent folder of ``path``; a clear error (naming ``option``) when that is impossible."""
    _check_parent(path, option)
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VitPruneError(
            f"cannot create folder {str(parent)!r} for {option} ({error.strerror}); choose another {option}"
        ) from None


def check_output(
    path: str | Path, option: str = "--output", force: bool = True, folder: bool = False, suffix: str = ""
) -> Path:
    """Refuse an output before any work: a folder where a file is asked (or the reverse), a name without
    ``suffix``, a folder that cannot be made or written, or an existing output without ``force``.

    Creates and writes nothing.
    """
    path = Path(path)
    if not folder and path.is_dir():
        example = f" such as {str(path / ('out' + suffix))!r}" if suffix else ""
        raise VitPruneError(f"{option} {str(path)!r} is a folder; give a file name{example}")
    if folder and path.exists() and not path.is_dir():
        raise VitPruneError(f"{option} {str(path)!r} is a file; give a folder name")
    if suffix and path.suffix.lower() != suffix:
        raise VitPruneError(f"{option} writes a {suffix} file; give a name ending in {suffix}, not {path.name!r}")
    _check_parent(path, option)
    if path.exists() and not force:
        raise VitPruneError(f"{str(path)!r} already exists; pass --force to replace it, or choose another {option}")
    return path


def check_input_file(path: str | Path, name: str, folder_hint: str, missing_hint: str) -> Path:
    """``path`` as a file to read, else a one-line error naming it ``name``: a folder (``folder_hint`` says
    what to give instead) or nothing there (``missing_hint``)."""
    path = Path(path)
    if path.is_dir():
        raise VitPruneError(f"{name} {str(path)!r} is a folder; {folder_hint}")
    if not path.is_file():
        raise VitPruneError(f"{name} {str(path)!r} does not exist; {missing_hint}")
    return path


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = "", option: str = "--output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = check_output(path, option)
    ensure_writable_dir(path, option)
    with files.atomic_path(path, suffix=suffix or ".tmp") as temporary:
        yield temporary


def atomic_write_text(path: str | Path, text: str) -> Path:
    return _atomic_write(path, Path.write_text, text)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, Path.write_bytes, data)


def _atomic_write(path: str | Path, write: Callable[[Path, Any], Any], content: Any) -> Path:
    """``write(temporary, content)`` through :func:`atomic_output`: ``path`` is whole or untouched."""
    with atomic_output(path) as temporary:
        write(temporary, content)
    return Path(path)


def parse_json(text: str, what: str, hint: str) -> Any:
    """The JSON value in ``text``; a one-line error naming ``what`` and ``hint`` (what to do) when it is not JSON.

    Python refuses to convert an integer of more than ``sys.get_int_max_str_digits()`` (4,300) digits and
    raises a plain ``ValueError`` (not a ``JSONDecodeError``): a crafted record, result or schedule holding
    one is bad input like any other.
    """
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError is a ValueError too
        reason = "it holds an integer with too many digits" if "integer string conversion" in str(error) else error
        raise VitPruneError(f"{what} is not valid JSON ({reason}); {hint}") from None


def slug(text: str) -> str:
    """A file-name-safe form of a device, model or method name."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "unknown"


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "vitprune bench") -> Iterator[Path]:
    """Hold ``<folder>/.vitprune.lock`` while the block runs: a second writer to the same folder is refused in
    one line instead of both timing each other and writing the same files.

    An advisory ``flock`` on an open file: the kernel drops it when the process ends, however it ends, so a
    killed run leaves no lock behind (the empty file stays). Where ``fcntl`` is missing (Windows) the block
    runs unlocked.
    """
    folder = Path(folder)
    ensure_writable_dir(folder / ".vitprune.lock", "--output")
    lock_path = folder / ".vitprune.lock"
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield lock_path
        return
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise VitPruneError(
                f"{str(folder)!r} is being written by {holder}; wait for it to finish or give another --output"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (process {os.getpid()})\n")
        handle.flush()
        try:
            yield lock_path
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
