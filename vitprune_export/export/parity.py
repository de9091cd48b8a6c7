"""The parity bound of export and rewrite (max |Δ| of the logits between two runtimes)."""

from __future__ import annotations

import math

from ..errors import VitPruneError

#: max |Δlogit| allowed between PyTorch and ONNX Runtime (export) or between two forms of a graph (rewrite)
DEFAULT_PARITY_TOLERANCE = 1e-4


def check_tolerance(tolerance: float) -> None:
    """A parity bound is a finite number ≥ 0."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise VitPruneError(f"--atol must be a finite number ≥ 0 (e.g. 1e-4), got {tolerance}")
