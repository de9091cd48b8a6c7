"""build, bundle and profile parse the ONNX file once (an OnnxArtifact handed down), not once per stage."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import requires_tensorrt_rtx
from vitprune_export.cli import app

TINY = "vitprune_tiny_patch4_32"


@pytest.fixture
def count_parses(monkeypatch):
    """Count onnx.load calls per file (TensorRT's and the runtimes' own parsers are theirs, not ours)."""
    calls: list[str] = []
    load = onnx.load_model

    def counting(source, *args, **kwargs):
        calls.append(Path(str(source)).name)
        return load(source, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting)
    monkeypatch.setattr(onnx, "load_model", counting)
    return calls


@requires_tensorrt_rtx
@pytest.mark.parametrize("precision", ["--fp32", "--fp16"])
def test_build_parses_the_file_once(export_cache, tmp_path, count_parses, precision):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    arguments = ["build", str(exported.path), "--profile", "rtx-generic", precision, "-o", str(tmp_path / "m.engine")]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert count_parses.count(exported.path.name) == 1, count_parses


def test_bundle_parses_the_file_once(export_cache, tmp_path, count_parses):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    arguments = ["bundle", str(exported.path), "--profile", "jetson-orin-nano", "-o", str(tmp_path / "b")]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert count_parses.count(exported.path.name) == 1, count_parses


@pytest.mark.parametrize("backend", ["ort-cpu"])  # ov-cpu: tests/measure/openvino_cases.py
def test_profile_parses_the_file_once(export_cache, tmp_path, count_parses, backend, monkeypatch):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    arguments = ["profile", str(exported.path), "--backend", backend, "--threads", "1", "--iterations", "2"]
    result = CliRunner().invoke(app, [*arguments, "--warm-up", "1", "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert count_parses.count(exported.path.name) == 1, count_parses
