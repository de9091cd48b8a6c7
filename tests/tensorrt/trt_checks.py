"""Shared by the real TensorRT tests: skip marks, the standard-op form of a plugin graph, and the checks
every built engine must pass."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from vitprune_export.export.onnx import read_metadata
from vitprune_export.portable.engine_description import SCHEMA, read_engine_description


def tensorrt_rtx_importable() -> bool:
    try:
        import tensorrt_rtx  # noqa: F401
    except Exception:
        return False
    return True


requires_tensorrt_rtx = pytest.mark.skipif(
    not tensorrt_rtx_importable(), reason="needs TensorRT for RTX (pip install -e '.[dev]' installs it)"
)
REAL_TENSORRT = [pytest.mark.tensorrt, requires_tensorrt_rtx]


def standard_form(plugin_path, folder):
    """The plugin graph at ``plugin_path`` rewritten to standard ops (vitprune rewrite --to standard), once."""
    from vitprune_export.export.rewrite import rewrite_onnx

    target = folder / f"{plugin_path.stem}_standard.onnx"
    if not target.exists():
        rewrite_onnx(plugin_path, target, "standard")
    return target


def check_built_engine(result, onnx_path, precision: str, image: int, classes: int, max_batch: int) -> None:
    """The engine file, the JSON beside it and the parsed network's I/O agree with the ONNX and the profile."""
    import onnx

    description = read_engine_description(result.path, required=True)
    assert description == result.description and description["schema"] == SCHEMA
    data = result.path.read_bytes()
    assert description["size_bytes"] == len(data) == result.size_bytes > 0
    assert description["sha256"] == hashlib.sha256(data).hexdigest()
    assert description["precision"] == precision and description["builder"]["strongly_typed"]
    assert description["tensorrt"]["flavour"] == "tensorrt_rtx" and description["built_with"] == "vitprune build"
    assert description["io"] == [
        {"name": "images", "mode": "input", "dtype": "float32", "shape": [-1, 3, image, image]},
        {"name": "logits", "mode": "output", "dtype": "float32", "shape": [-1, classes]},
    ]
    assert description["builder"]["shape_profile"] == {
        "images": [[1, 3, image, image], [1, 3, image, image], [max_batch, 3, image, image]]
    }
    metadata = read_metadata(onnx_path)
    assert description["onnx_metadata"] == metadata and description["onnx_metadata"]["keep_counts"]
    kept = set(description["builder"]["fp32_layers"])
    if precision == "fp16":
        proto = onnx.load(str(onnx_path), load_external_data=False)
        fragile = {n.name for n in proto.graph.node if n.op_type in ("LayerNormalization", "Softmax", "TopK")}
        assert fragile and fragile <= kept
    else:
        assert not kept


def trtexec_standin(folder: Path) -> tuple[Path, Path, Path]:
    """A stand-in ``trtexec`` that writes its argv as JSON, and a ``python`` that does nothing; (trtexec, python,
    the argv file). ``build.sh --trtexec`` run with ``TRTEXEC``/``PYTHON`` pointing at them shows what it passes."""
    log = folder / "trtexec-argv.json"
    path = folder / "trtexec"
    path.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n")
    path.chmod(0o755)
    python = folder / "python"
    python.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(0)\n")
    python.chmod(0o755)
    return path, python, log
