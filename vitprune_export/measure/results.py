"""The results JSON (``vitprune.result/1``): one measurement of one model on one device/backend.

Written by ``vitprune profile`` (``kind: "latency"``), by ``vitprune eval``
(``kind: "accuracy"``) and by the Jetson bundle's ``profile.sh``; read by
``vitprune compare``. Fields::

    schema, kind, model, method, method_options, rate (float | null), keep_counts,
    macs, baseline_macs, weights, device, backend, precision, batch,
    latency:  latency_ms {median, mean, p90, p99, std, min, max} (one query of
              ``batch`` images), images_per_s, warmup, iterations
    accuracy: accuracy {top1 (0..1), dataset, images, agreement, reference_backend}
    environment {...}, created (ISO-8601), source

Extra keys (``schedule``, ``threads``, ``note``) are allowed and kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..files import atomic_write_text

SCHEMA = "vitprune.result/1"
KINDS = ("latency", "accuracy")
BACKENDS = ("torch-cpu", "torch-cuda", "ort-cpu", "trt")
PRECISIONS = ("fp32", "fp16")
LATENCY_STATS = ("median", "mean", "p90", "p99", "std", "min", "max")

_REQUIRED: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "kind": (str,),
    "model": (str,),
    "method": (str,),
    "method_options": (dict,),
    "rate": (int, float, type(None)),
    "keep_counts": (list,),
    "macs": (int, type(None)),
    "baseline_macs": (int, type(None)),
    "weights": (str,),
    "device": (str,),
    "backend": (str,),
    "precision": (str,),
    "batch": (int,),
    "environment": (dict,),
    "created": (str,),
    "source": (str,),
}


def now_iso() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def rate_tag(rate: float | None, keep_counts: list[int] | None = None, method: str = "") -> str:
    """``r0.06`` for one rate; ``sched-<hash>`` for a per-layer schedule; ``r0`` for the baseline."""
    if rate is not None:
        return f"r{rate:g}"
    if method == "none" or not keep_counts or len(set(keep_counts)) <= 1:
        return "r0"
    digest = hashlib.sha1(",".join(map(str, keep_counts)).encode()).hexdigest()[:6]
    return f"sched-{digest}"


def slug(text: str) -> str:
    """A file-name-safe form of a device or model name."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "unknown"


def default_result_path(result: dict[str, Any], root: str | Path = "profiles/results") -> Path:
    """``profiles/results/<device>/<model>_<method>_<rate>_<backend>_b<batch>.json`` (``_fp16`` when fp16)."""
    tag = rate_tag(result.get("rate"), result.get("keep_counts"), result.get("method", ""))
    precision = "" if result.get("precision", "fp32") == "fp32" else f"_{result['precision']}"
    kind = "" if result.get("kind", "latency") == "latency" else f"_{result['kind']}"
    name = f"{slug(result['model'])}_{slug(result['method'])}_{tag}_{result['backend']}_b{result['batch']}{precision}{kind}.json"
    return Path(root) / slug(result["device"]) / name


def validate_result(data: Any, source: str = "result") -> dict[str, Any]:
    """Check one result against the schema; a VitPruneError names the file and the field."""
    if not isinstance(data, dict):
        raise VitPruneError(f"{source}: a result must be a JSON object, got {type(data).__name__}")
    if data.get("schema") != SCHEMA:
        raise VitPruneError(f"{source}: not a vitprune result (schema {data.get('schema')!r}, expected {SCHEMA!r})")
    for key, types in _REQUIRED.items():
        if key not in data:
            raise VitPruneError(f"{source}: missing field {key!r}")
        value = data[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise VitPruneError(f"{source}: field {key!r} has type {type(value).__name__}")
    if data["kind"] not in KINDS:
        raise VitPruneError(f"{source}: kind {data['kind']!r} is not one of {', '.join(KINDS)}")
    if data["backend"] not in BACKENDS:
        raise VitPruneError(f"{source}: backend {data['backend']!r} is not one of {', '.join(BACKENDS)}")
    if data["precision"] not in PRECISIONS:
        raise VitPruneError(f"{source}: precision {data['precision']!r} is not one of {', '.join(PRECISIONS)}")
    if data["batch"] < 1:
        raise VitPruneError(f"{source}: batch must be ≥ 1, got {data['batch']}")
    if data["kind"] == "latency":
        _validate_latency(data, source)
    else:
        _validate_accuracy(data, source)
    return data


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _validate_latency(data: dict[str, Any], source: str) -> None:
    latency = data.get("latency_ms")
    if not isinstance(latency, dict):
        raise VitPruneError(f"{source}: a latency result needs 'latency_ms' {{{', '.join(LATENCY_STATS)}}}")
    for stat in LATENCY_STATS:
        if not _positive_number(latency.get(stat)):
            raise VitPruneError(f"{source}: latency_ms.{stat} must be a number ≥ 0, got {latency.get(stat)!r}")
    if not latency["min"] <= latency["median"] <= latency["max"]:
        raise VitPruneError(f"{source}: latency_ms is inconsistent (min ≤ median ≤ max fails)")
    for key in ("images_per_s",):
        if not _positive_number(data.get(key)):
            raise VitPruneError(f"{source}: {key} must be a number ≥ 0")
    for key in ("warmup", "iterations"):
        if not isinstance(data.get(key), int) or data[key] < 0:
            raise VitPruneError(f"{source}: {key} must be an integer ≥ 0")


def _validate_accuracy(data: dict[str, Any], source: str) -> None:
    accuracy = data.get("accuracy")
    if not isinstance(accuracy, dict):
        raise VitPruneError(f"{source}: an accuracy result needs 'accuracy' {{top1, dataset, images, …}}")
    top1 = accuracy.get("top1")
    if not (_positive_number(top1) and top1 <= 1):
        raise VitPruneError(f"{source}: accuracy.top1 must be a fraction in [0, 1], got {top1!r}")
    if not isinstance(accuracy.get("dataset"), str):
        raise VitPruneError(f"{source}: accuracy.dataset must be a string")
    if not isinstance(accuracy.get("images"), int) or accuracy["images"] < 1:
        raise VitPruneError(f"{source}: accuracy.images must be an integer ≥ 1")


def write_result(path: str | Path, data: dict[str, Any]) -> Path:
    """Validate, then write atomically (no half-written file on failure)."""
    validate_result(data, str(path))
    path = Path(path)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def load_result(path: str | Path) -> dict[str, Any]:
    from ..portable.engine_description import is_engine_description

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise VitPruneError(f"result file {str(path)!r} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise VitPruneError(f"{str(path)!r} is not valid JSON ({error}); re-run the command that wrote it") from None
    if is_engine_description(data):
        engine = str(path)[: -len(".json")] if str(path).endswith(".json") else data.get("engine")
        raise VitPruneError(
            f"{str(path)!r} describes an engine ({data['schema']}), it is not a result; measure the engine with "
            f"'vitprune profile {engine} --backend trt' and compare the result"
        )
    return validate_result(data, str(path))


def load_results(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Results from files and folders (searched recursively for ``*.json``).

    A file named explicitly must be a valid result. In a folder, JSON files that
    are not vitprune results (engine descriptions, other JSON) are skipped;
    a vitprune result that is broken is still an error.
    """
    if not paths:
        raise VitPruneError("no results given; pass result files or a folder such as profiles/results")
    results: list[dict[str, Any]] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            found = 0
            for file in sorted(entry.rglob("*.json")):
                try:
                    data = json.loads(file.read_text())
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(data, dict) and str(data.get("schema", "")).startswith("vitprune.result/"):
                    data = validate_result(data, str(file))
                    data.setdefault("_path", str(file))
                    results.append(data)
                    found += 1
            if not found:
                raise VitPruneError(f"folder {str(entry)!r} holds no vitprune result JSON; run 'vitprune profile' first")
        elif entry.exists():
            data = load_result(entry)
            data.setdefault("_path", str(entry))
            results.append(data)
        else:
            raise VitPruneError(f"result file or folder {str(entry)!r} does not exist")
    return results


__all__ = [
    "SCHEMA", "default_result_path", "load_result", "load_results", "now_iso", "rate_tag", "slug",
    "validate_result", "write_result",
]
