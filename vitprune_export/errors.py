"""User-facing errors: one line saying what is wrong and what to do.

The CLI turns a :class:`VitPruneError` into that line on stderr and exit code 2,
without a traceback. Library callers catch it like any other exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VitPruneError(Exception):
    """A problem with the user's input or environment, not a bug in vitprune."""


class MissingDependencyError(VitPruneError):
    """An optional dependency (TensorRT, CUDA, a GPU) is not available."""


class VitPruneWarning(UserWarning):
    """Something the user asked for is accepted but does not do what they may think; the CLI always shows it."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choices, or ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
