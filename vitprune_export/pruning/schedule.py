"""Pruning rates → static per-layer token counts (VPA paper §3.1, Alg. 1 line 8).

``N_l`` tokens enter block ``l``; a rate ``r_l`` removes ``m_l = ⌊r_l · N_l⌋``
tokens, so ``N_{l+1} = N_l − m_l``. A schedule is the list of ``m_l``. Export bakes
it into the graph, so every token dimension is a static integer.

Three ways to give one: one rate for every block (``--rate``), a rate per block
(``--rates``), or the removed counts themselves (``--schedule FILE.json``: a JSON
list, or an object with a ``"removed"`` list, as ``vitprune adjust`` writes).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import VitPruneError


@dataclass(frozen=True)
class Schedule:
    """How many tokens each block removes, and the counts that follow."""

    removed: tuple[int, ...]
    tokens_in: tuple[int, ...]
    num_prefix: int
    rates: tuple[float, ...] | None = None

    @property
    def tokens_out(self) -> tuple[int, ...]:
        return tuple(n - m for n, m in zip(self.tokens_in, self.removed))

    @property
    def depth(self) -> int:
        return len(self.removed)

    def to_dict(self) -> dict:
        """The schedule as JSON data (lists), with ``tokens_out``."""
        data = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}
        data["tokens_out"] = list(self.tokens_out)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Schedule | None:
        """The schedule of :meth:`to_dict` (as JSON gives it back); None when a field is missing or malformed."""
        try:
            rates = data.get("rates")
            return cls(
                removed=tuple(int(m) for m in data["removed"]),
                tokens_in=tuple(int(n) for n in data["tokens_in"]),
                num_prefix=int(data["num_prefix"]),
                rates=tuple(float(r) for r in rates) if rates is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def parse_rates(text: str) -> list[float]:
    """``"0.1,0.1,0"`` → ``[0.1, 0.1, 0.0]`` with a clear error for bad entries."""
    try:
        return [float(part) for part in text.replace(" ", "").split(",") if part != ""]
    except ValueError:
        raise VitPruneError(f"--rates must be comma-separated numbers, e.g. 0.1,0.1,0.05; got {text!r}") from None


def load_removed_counts(path: str | Path) -> list[int]:
    """Read a schedule JSON: a list of removed counts, or ``{"removed": [...]}``."""
    from ..files import parse_json

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise VitPruneError(
            f"schedule file {str(path)!r} does not exist; give the JSON file 'vitprune adjust' wrote"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise VitPruneError(
            f"schedule file {str(path)!r} is not valid JSON ({error}); expected a list of removed counts"
        ) from None
    data = parse_json(text, f"schedule file {str(path)!r}", "expected a list of removed counts")
    if isinstance(data, dict):
        data = data.get("removed")
    if not isinstance(data, list) or not all(isinstance(m, int) and not isinstance(m, bool) for m in data):
        raise VitPruneError(
            f"schedule file {str(path)!r} must hold a list of integers (tokens removed per block) "
            'or an object with a "removed" list'
        )
    return data


def check_rate(rate: float, where: str) -> None:
    if not (isinstance(rate, (int, float)) and math.isfinite(rate) and 0.0 <= rate < 1.0):
        raise VitPruneError(f"{where} must be in [0, 1), got {rate!r}")


def build_schedule(
    num_tokens: int,
    num_prefix: int,
    depth: int,
    *,
    rate: float | None = None,
    rates: Sequence[float] | None = None,
    removed: Sequence[int] | None = None,
    method=None,
) -> Schedule:
    """Turn one of ``rate``, ``rates`` or ``removed`` into a validated :class:`Schedule`.

    ``method`` (a :class:`~vitprune_export.pruning.methods.base.TokenReduction`) caps
    rate-derived counts (ToMe: half the patch tokens) and bounds explicit ones.
    A schedule that would leave no patch token is an error, raised before any work.
    """
    given = sum(option is not None for option in (rate, rates, removed))
    if given > 1:
        raise VitPruneError("give only one of --rate, --rates or --schedule")
    if rate is not None:
        check_rate(rate, "--rate")
        rates = [rate] * depth
    if rates is not None:
        rates = list(rates)
        if len(rates) != depth:
            raise VitPruneError(
                f"--rates has {len(rates)} entries but the model has {depth} blocks; give one rate per block"
            )
        for index, layer_rate in enumerate(rates):
            check_rate(layer_rate, f"rate of block {index}")
    if removed is not None:
        removed = list(removed)
        if len(removed) != depth:
            raise VitPruneError(
                f"the schedule has {len(removed)} entries but the model has {depth} blocks; give one count per block"
            )

    counts: list[int] = []
    tokens_in: list[int] = []
    tokens = num_tokens
    for layer in range(depth):
        tokens_in.append(tokens)
        if rates is not None:
            count = math.floor(rates[layer] * tokens)
            if method is not None:
                count = method.cap_remove(tokens, num_prefix, count)
        elif removed is not None:
            count = removed[layer]
            if count < 0:
                raise VitPruneError(f"block {layer} of the schedule removes {count} tokens; counts must be ≥ 0")
            if method is not None and count > method.max_remove(tokens, num_prefix):
                most = method.max_remove(tokens, num_prefix)
                raise VitPruneError(
                    f"block {layer} of the schedule removes {count} of {tokens} tokens but "
                    f"{getattr(method, 'name', 'this method')} can remove at most {most} there"
                )
        else:
            count = 0
        if method is not None and not method.changes_token_count:
            count = 0
        if tokens - count < num_prefix + 1:
            source = f"rate {rates[layer]}" if rates is not None else "the schedule"
            raise VitPruneError(
                f"{source} leaves no patch token after block {layer} ({tokens} → {tokens - count} tokens, "
                f"{num_prefix} of them prefix tokens); lower the rate"
            )
        counts.append(count)
        tokens -= count
    return Schedule(
        removed=tuple(counts),
        tokens_in=tuple(tokens_in),
        num_prefix=num_prefix,
        rates=tuple(rates) if rates is not None else None,
    )


def save_schedule(path: str | Path, schedule: Schedule, **extra) -> None:
    """Write ``{"removed": [...], ...}`` atomically."""
    from ..files import atomic_write_text

    atomic_write_text(Path(path), json.dumps({**schedule.to_dict(), **extra}, indent=2) + "\n")
