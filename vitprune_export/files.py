"""Atomic file output for the package, and file-name-safe names.

The mechanics (temporary name beside the target, then rename) are
:mod:`.portable.files`, shared with device bundles; here a folder that cannot be
created or written becomes a one-line :class:`~vitprune_export.errors.VitPruneError`
before anything is written. A failed or interrupted command never leaves a
half-written file under the name the user asked for.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .errors import VitPruneError
from .portable import files


def ensure_writable_dir(path: Path) -> None:
    """Create the parent folder of ``path``; a clear error when that is impossible."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise VitPruneError(
            f"cannot create folder {str(parent)!r} for the output ({error.strerror}); choose another --output"
        ) from None
    if not os.access(parent, os.W_OK):
        raise VitPruneError(f"folder {str(parent)!r} is not writable; choose another --output")


@contextlib.contextmanager
def atomic_output(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    ensure_writable_dir(path)
    with files.atomic_path(path, suffix=suffix or ".tmp") as temporary:
        yield temporary


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_output(path) as temporary:
        temporary.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def slug(text: str) -> str:
    """A file-name-safe form of a device, model or method name."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "unknown"
