"""The hook through which export swaps a method's reduction step for one fused op.

The methods are pure tensor maths and never import the exporter. Three of
their steps have a fused form with a TensorRT plugin (Top-K selection, Top-K +
VPA, the ToMe merge): while a plugin-node export traces the model,
:func:`fused_steps` installs a table of replacements (``torch.ops.vitprune.*``
custom ops, which the exporter writes as one node each), and a method asks
:func:`fused_step` for its step by name before running its own maths. Outside
an export the table is empty and every method runs unchanged.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_state = threading.local()


def fused_step(name: str) -> Callable | None:
    """The fused replacement of step ``name`` (``topk_select``, ``vpa``, ``tome_merge``) while one is installed."""
    table = getattr(_state, "table", None)
    return None if table is None else table.get(name)


def fused_steps_active() -> bool:
    """True while a table of fused steps is installed (a plugin-node export is tracing)."""
    return getattr(_state, "table", None) is not None


@contextlib.contextmanager
def fused_steps(table: dict[str, Callable]) -> Iterator[None]:
    """Install ``table`` (step name → replacement) for the duration; nested installs restore the outer one."""
    previous = getattr(_state, "table", None)
    _state.table = {**(previous or {}), **table}
    try:
        yield
    finally:
        _state.table = previous


__all__ = ["fused_step", "fused_steps", "fused_steps_active"]
