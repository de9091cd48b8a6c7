"""The parity bound of export and rewrite (max |Δ| of the logits between two runtimes)."""

from __future__ import annotations

import math

from ..errors import VitPruneError


def check_tolerance(tolerance: float) -> None:
    """A parity bound is a finite number ≥ 0."""
    if not math.isfinite(tolerance) or tolerance < 0:
        raise VitPruneError(f"--atol must be a finite number ≥ 0 (e.g. 1e-4), got {tolerance}")
