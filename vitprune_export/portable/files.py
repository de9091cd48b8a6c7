"""Atomic file output: write to a temporary name beside the target, then rename.

Standard library only. A failed or interrupted write never leaves a half-written
file under the name asked for: the data goes to ``.<name>.<random>`` in the same
folder (so the rename is atomic), gets the usual permissions, and replaces the
target only once it is complete; on any error the temporary file is removed.
The data is flushed to disk (``fsync``) before the rename and the folder after
it, so a device that loses power keeps either the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush ``path``'s data (or a folder's entries) to disk; a file system that cannot sync a folder is let be."""
    try:
        descriptor = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if folder else 0))
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(descriptor)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure delete it."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=str(folder))
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        temporary.chmod(0o666 & ~_umask())  # mkstemp makes 0600
        if temporary.is_file():
            _fsync(temporary)
        os.replace(temporary, path)
        _fsync(folder, folder=True)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)
