"""Atomic file output: write to a temporary name beside the target, then rename.

A failed or interrupted command never leaves a half-written file under the
name the user asked for.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import VitPruneError


def ensure_writable_dir(path: Path) -> None:
    """Create the parent folder of ``path``; a clear error when that is impossible."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VitPruneError(f"cannot create folder {str(parent)!r} for the output ({error.strerror}); choose another --output") from None
    if not os.access(parent, os.W_OK):
        raise VitPruneError(f"folder {str(parent)!r} is not writable; choose another --output")


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    ensure_writable_dir(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent or ".")
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        temporary_path.chmod(0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(temporary_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary_path.unlink()
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_output(path) as temporary:
        temporary.write_text(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
