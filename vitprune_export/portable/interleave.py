"""Interleaved timing: every candidate measured in turn, round after round, so that a clock, a temperature or
another job that drifts over the run touches every candidate alike instead of whichever ran last.

The one round-robin loop behind ``vitprune bench`` (cells, order rotating), ``vitprune plan`` (block parts
and models), the device curves of a bundle (part engines, :mod:`.trt_curves`) and the runners' tuning of
their settings (:mod:`vitprune_export.measure.runners`). Each caller keeps its own statistic of the samples
(:func:`.stats.latency_stats`). Standard library only: a bundle runs it on the device.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

Key = TypeVar("Key", bound=Hashable)

#: ``sample(n)``: run a candidate ``n`` times; its ``n`` latencies (ms)
Sampler = Callable[[int], Sequence[float]]


def interleave(
    samplers: dict[Key, Sampler],
    rounds: int,
    per_round: int,
    *,
    warmup: int = 0,
    rotate: bool = False,
    on_round: Callable[[int], None] | None = None,
) -> dict[Key, list[list[float]]]:
    """Each candidate's samples, one list per round: first ``warmup`` untimed samples of each in turn (none
    asked of a sampler when ``warmup`` is 0), then
    ``rounds`` passes taking ``per_round`` samples of every candidate in turn; with ``rotate`` pass ``i``
    starts ``i`` candidates later (so no candidate always runs first). ``on_round(i)`` is told before pass
    ``i`` (counting from 0)."""
    keys = list(samplers)
    for key in keys if warmup > 0 else ():
        samplers[key](warmup)
    chunks: dict[Key, list[list[float]]] = {key: [] for key in keys}
    for index in range(rounds):
        if on_round is not None:
            on_round(index)
        shift = index % len(keys) if rotate and keys else 0
        for key in keys[shift:] + keys[:shift]:
            chunks[key].append(list(samplers[key](per_round)))
    return chunks


def repeated(once: Callable[[], float]) -> Sampler:
    """The sampler that calls ``once`` (one query, returning its ms) ``n`` times."""
    return lambda count: [once() for _ in range(count)]


def wall_ms(call: Callable[[], Any]) -> Callable[[], float]:
    """``call`` timed: each call of the result runs it once and returns its wall time in ms (``perf_counter``)."""

    def timed() -> float:
        started = time.perf_counter()
        call()
        return (time.perf_counter() - started) * 1e3

    return timed


def samples_of(chunks: dict[Key, list[list[float]]]) -> dict[Key, list[float]]:
    """Each candidate's samples of every round, in order, as one list."""
    return {key: [sample for chunk in rounds for sample in chunk] for key, rounds in chunks.items()}


__all__ = ["Sampler", "interleave", "repeated", "samples_of", "wall_ms"]
