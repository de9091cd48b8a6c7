"""The results JSON (``vitprune.result/1``): how one measurement is written, by ``vitprune`` and by a bundle.

Standard library and numpy. A result is the pruning record's fields (model,
method, options, rate, keep counts, MACs, weights, schedule), where and how it
was measured (device, backend, precision, batch), the numbers, the environment,
when, and from what. :func:`record_fields` is the one place that copies the
record into a result; validation and reading live in
``vitprune_export.measure.results``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from .stats import images_per_second, latency_stats

SCHEMA = "vitprune.result/1"


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def record_fields(record: dict, kind: str, device: str, backend: str, precision: str, batch: int, source: str) -> dict:
    """The head of a result: schema, kind, the record's fields (``record``: the ONNX's vitprune metadata) and
    where it was measured."""
    return {
        "schema": SCHEMA,
        "kind": kind,
        "model": str(record.get("model") or Path(source).stem),
        "method": str(record.get("method") or "unknown"),
        "method_options": dict(record.get("method_options") or {}),
        "rate": record.get("rate"),
        "keep_counts": [int(n) for n in record.get("keep_counts") or []],
        "macs": record.get("macs"),
        "baseline_macs": record.get("baseline_macs"),
        "weights": str(record.get("weights") or "unknown"),
        "device": device,
        "backend": backend,
        "precision": precision,
        "batch": batch,
    }


def latency_result(
    record: dict,
    samples: list,
    batch: int,
    warmup: int,
    device: str,
    precision: str,
    env: dict,
    source: str,
    backend: str = "trt",
) -> dict:
    """A latency result: the statistics of ``samples`` (ms per query of ``batch`` images) and images/s."""
    stats = latency_stats(samples)
    return {
        **record_fields(record, "latency", device, backend, precision, batch, source),
        "latency_ms": stats,
        "images_per_s": images_per_second(batch, stats["median"]),
        "warmup": warmup,
        "iterations": len(samples),
        "schedule": record.get("schedule"),
        "environment": env,
        "created": now_iso(),
        "source": source,
    }
