"""The results JSON (``vitprune.result/1``): one measurement of one model on one device/backend.

Written by ``vitprune profile`` (``kind: "latency"``), by ``vitprune eval``
(``kind: "accuracy"``) and by the Jetson bundle's ``profile.sh``, all through
:mod:`..portable.results`; read by ``vitprune compare``. A user's runs land in
``results/<device>/`` under the working directory (:func:`default_result_path`);
the results the project measured ship with the package and are read only when
asked (:func:`reference_results`). Fields::

    schema, kind, model, method, method_options, rate (float | null), keep_counts,
    macs, baseline_macs, weights, device, backend, precision, batch,
    latency:  latency_ms {median, mean, p90, p99, std, min, max} (one query of
              ``batch`` images), images_per_s, warmup, iterations
    accuracy: accuracy {top1 (0..1), dataset, images, agreement, reference_backend}
    environment {...}, created (ISO-8601), source

Extra keys (``schedule``, ``threads``, ``note``) are allowed and kept.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import VitPruneError
from ..files import atomic_write_text, parse_json, slug
from ..portable.results import SCHEMA, now_iso
from ..portable.stats import STATS as LATENCY_STATS
from ..record import PruningRecord
from ..resources import reference_results_dir

#: where a user's results go, under the working directory
DEFAULT_ROOT = Path("results")
KINDS = ("latency", "accuracy")
BACKENDS = ("torch-cpu", "torch-cuda", "ort-cpu", "ov-cpu", "ov-gpu", "ov-npu", "trt")
PRECISIONS = ("fp32", "fp16", "int8", "fp8")

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


def default_result_path(result: dict[str, Any], root: str | Path = DEFAULT_ROOT) -> Path:
    """``results/<device>/<model>_<method>_<rate>_<backend>_b<batch>.json`` (``_fp16`` when fp16).

    The stem is the pruning record's tag (:attr:`~vitprune_export.record.PruningRecord.tag`), the one
    naming shared with exported ONNX files and device bundles.
    """
    tag = PruningRecord.from_metadata(result).tag
    precision = result.get("precision") or "fp32"
    precision = "" if precision == "fp32" else f"_{precision}"
    kind = "" if result.get("kind", "latency") == "latency" else f"_{result['kind']}"
    name = f"{tag}_{result['backend']}_b{result['batch']}{precision}{kind}.json"
    return Path(root) / slug(result["device"]) / name


def reference_results() -> Path:
    """The folder of results the project measured (shipped with the package; never written)."""
    return reference_results_dir()


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
        text = path.read_text()
    except FileNotFoundError:
        raise VitPruneError(f"result file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as error:
        raise VitPruneError(f"{str(path)!r} is not valid JSON ({error}); re-run the command that wrote it") from None
    data = parse_json(text, repr(str(path)), "re-run the command that wrote it")
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
        raise VitPruneError("no results given; pass result files or a folder such as results/ (or --references)")
    results: list[dict[str, Any]] = []
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            found = 0
            for file in sorted(entry.rglob("*.json")):
                try:
                    data = json.loads(file.read_text())
                except ValueError:  # not JSON (UnicodeDecodeError too), or an integer too long to convert
                    continue
                if isinstance(data, dict) and str(data.get("schema", "")).startswith("vitprune.result/"):
                    data = validate_result(data, str(file))
                    data.setdefault("_path", str(file))
                    results.append(data)
                    found += 1
            if not found:
                raise VitPruneError(
                    f"folder {str(entry)!r} holds no vitprune result JSON; run 'vitprune profile' first"
                )
        elif entry.exists():
            data = load_result(entry)
            data.setdefault("_path", str(entry))
            results.append(data)
        else:
            raise VitPruneError(
                f"result file or folder {str(entry)!r} does not exist; 'vitprune profile' writes results/<device>/…, "
                "and --references reads the results shipped with vitprune"
            )
    return results


__all__ = [
    "DEFAULT_ROOT",
    "LATENCY_STATS",
    "SCHEMA",
    "default_result_path",
    "load_result",
    "load_results",
    "now_iso",
    "reference_results",
    "validate_result",
    "write_result",
]
