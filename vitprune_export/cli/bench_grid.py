"""``vitprune bench``'s grid from the command line: comma lists checked and turned into the cells to measure."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import VitPruneError

if TYPE_CHECKING:
    from ..measure.bench import BenchCell

#: the precisions a grid takes: fp32, and INT8 Q/DQ files (vitprune quantize's placement) on ONNX Runtime and OpenVINO
BENCH_PRECISIONS = ("fp32", "int8")
#: the largest batch and thread count a grid takes (the caps of ``vitprune profile``)
MAX_BATCH = 4096
MAX_THREADS = 1024


def split_list(text: str | None, name: str) -> list[str]:
    """``"a, b,c"`` → ``["a", "b", "c"]``; an empty list is an error naming the option."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise VitPruneError(f"{name} is empty; give a comma-separated list, e.g. {name} 1,2")
    return items


def numbers(text: str | None, name: str, kind: type, minimum: float, maximum: float = math.inf) -> list:
    """The distinct numbers of the comma list ``text`` of option ``name``, each of ``kind`` within bounds."""
    values = []
    for item in split_list(text, name):
        try:
            value = kind(item)
        except ValueError:
            raise VitPruneError(f"{name}: {item!r} is not a {'whole ' if kind is int else ''}number") from None
        if not minimum <= value <= maximum or (kind is float and not math.isfinite(value)):
            bound = f"{minimum:g} to {maximum:g}" if math.isfinite(maximum) else f"≥ {minimum:g}"
            raise VitPruneError(f"{name}: {item} is out of range ({bound})")
        values.append(value)
    return list(dict.fromkeys(values))


def check_includes(include: list[Path]) -> None:
    """Every ``--include`` exists (checked before the grid, before anything is measured)."""
    for path in include:
        if not Path(path).exists():
            raise VitPruneError(f"--include {str(path)!r} does not exist; pass a result file or folder")


def parse_grid(
    models: str,
    methods: str,
    rates: str | None,
    schedules: str | None,
    backends: str,
    batches: str,
    threads: str | None,
    precisions: str = "fp32",
) -> list[BenchCell]:
    """The grid from the comma lists of the command line, checked before anything is built."""
    from ..measure.bench import expand_grid, unavailable_reason
    from ..measure.runners import list_backends
    from ..pruning.methods import list_methods
    from ..pruning.models import check_model_name

    method_names = split_list(methods, "--methods")
    known = list_methods()
    for name in method_names:
        if name not in known:
            from ..errors import did_you_mean

            raise VitPruneError(f"unknown method {name!r}{did_you_mean(name, known)}; see 'vitprune methods'")
    model_names = split_list(models, "--model")
    for name in model_names:
        check_model_name(name)
    backend_names = split_list(backends, "--backends")
    for name in backend_names:
        if name not in list_backends():
            unavailable_reason(name)  # the error names the near misses
    schedule_files = [Path(item) for item in split_list(schedules, "--schedules")] if schedules else []
    for path in schedule_files:
        if not path.is_file():
            raise VitPruneError(f"schedule file {str(path)!r} does not exist")
    rate_values = numbers(rates, "--rates", float, 0.0) if rates else []
    if any(rate >= 1 for rate in rate_values):
        raise VitPruneError("--rates: a rate is the share of tokens removed per block, in [0, 1)")
    thread_counts: list[int | None] = numbers(threads, "--threads", int, 1, MAX_THREADS) if threads else [None]
    precision_names = split_list(precisions, "--precisions")
    for name in precision_names:
        if name not in BENCH_PRECISIONS:
            from ..errors import did_you_mean

            raise VitPruneError(
                f"--precisions: {name!r} is not one of {', '.join(BENCH_PRECISIONS)}{did_you_mean(name, BENCH_PRECISIONS)}"
                " (fp16 runs as fp32 behind casts on the CPU runtimes: build an fp16 engine for a GPU)"
            )
    return expand_grid(
        model_names,
        method_names,
        rate_values,
        schedule_files,
        backend_names,
        numbers(batches, "--batch", int, 1, MAX_BATCH),
        thread_counts,
        precision_names,
    )


__all__ = ["BENCH_PRECISIONS", "MAX_BATCH", "MAX_THREADS", "check_includes", "numbers", "parse_grid", "split_list"]
