"""The block parts a device bundle ships so that ``plan.sh`` can measure the planner's curves there.

``vitprune bundle --plan --plan-points N`` writes ``parts/``: the three parts of the model's middle block
(:mod:`..export.block_parts`) at ``N`` token counts, each a static ONNX (converted to fp16 like
the bundle's model when the device's TensorRT is strongly typed) with its own builder settings
(``<kind>_<tokens>.settings.json``, the profile's settings for that input), and ``parts.json``,
what :mod:`..portable.trt_curves` reads.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..errors import VitPruneError
from ..files import slug
from ..portable.trt_curves import PARTS_SCHEMA
from ..record import PruningRecord
from .profiles import DeviceProfile
from .settings import OnnxFacts, builder_settings

#: the fewest and most token counts a bundle's curves may have (ViT-S parts are ~19 MB per count)
PLAN_POINTS = (2, 12)


def check_plan_request(record: PruningRecord, points: int, source: Path) -> None:
    """Fail before anything is written when the ONNX cannot be planned for."""
    if not (PLAN_POINTS[0] <= points <= PLAN_POINTS[1]):
        raise VitPruneError(f"--plan takes {PLAN_POINTS[0]} to {PLAN_POINTS[1]} token counts, got {points}")
    if record.model == "unknown" or not record.keep_counts:
        raise VitPruneError(
            f"--plan needs the pruning record of 'vitprune export' in {str(source)!r} (model, method, keep counts); "
            "bundle an ONNX that vitprune exported"
        )


def plan_names(record: PruningRecord, batch: int, precision: str) -> tuple[str, str]:
    """(curves file name, schedule name prefix) under ``results/<device>/curves|plans/``."""
    stem = f"{slug(record.model)}_{slug(record.method)}_trt_b{batch}" + ("" if precision == "fp32" else f"_{precision}")
    return f"{stem}.json", stem


def write_parts(
    folder: Path,
    record: PruningRecord,
    profile: DeviceProfile,
    flavour: str,
    version: str,
    batch: int,
    points: int,
    say=lambda message: None,
) -> list[str]:
    """Export, convert and describe the parts into ``folder``; return the ONNX file names written."""
    from ..export.block_parts import PROBE_SHARE, export_block_parts
    from ..export.fp16 import convert_onnx_to_fp16

    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory(prefix="vitprune-parts-") as scratch:
        parts = export_block_parts(
            record.model, record.method, dict(record.method_options), Path(scratch), points, batch, say
        )
        for key, source in parts.files.items():
            kind, tokens = key.split(":")
            facts = OnnxFacts.read(source)
            settings = builder_settings(
                profile, flavour, version, facts.inputs, facts.precision, fp32_layers=facts.fp32_layers
            )
            name = f"{kind}_{tokens}.onnx"
            if settings.convert_onnx_to_fp16:
                convert_onnx_to_fp16(source, folder / name, [])
            else:
                Path(source).replace(folder / name)
            data = settings.for_device(profile)
            if settings.timing_cache:
                data["timing_cache"] = "timing.cache"
            (folder / f"{kind}_{tokens}.settings.json").write_text(json.dumps(data, indent=2) + "\n")
            entries.append({"kind": kind, "tokens": int(tokens), "onnx": name})
            precision = settings.precision
    manifest = {
        "schema": PARTS_SCHEMA,
        "model": record.model,
        "method": record.method,
        "method_options": parts.method_options,
        "batch": batch,
        "precision": precision,
        "tokens_in": parts.tokens_in,
        "num_prefix": parts.num_prefix,
        "depth": parts.depth,
        "layer": parts.layer,
        "probe_share": PROBE_SHARE,
        "max_remove": parts.max_remove,
        "points": parts.points,
        "parts": entries,
    }
    if parts.depth != len(record.keep_counts):
        raise VitPruneError(
            f"the record says {len(record.keep_counts)} blocks but {record.model!r} has {parts.depth}; re-export it"
        )
    (folder / "parts.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return [entry["onnx"] for entry in entries]


__all__ = ["PLAN_POINTS", "check_plan_request", "plan_names", "write_parts"]
