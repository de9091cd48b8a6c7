"""One engine description: `vitprune build` and a device bundle's portable.trt_build write the same JSON beside
an engine (schema vitprune.engine/2, one writer in vitprune_export/portable/engine_description.py), and the
TensorRT runner and compare read it through one reader. Real engines from both paths (TensorRT for RTX)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import requires_tensorrt_rtx
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.measure.results import load_result
from vitprune_export.measure.runners.trt_runner import engine_description
from vitprune_export.portable import engine_description as schema
from vitprune_export.tensorrt.build import build_engine
from vitprune_export.tensorrt.bundle import bundle

TINY = "vitprune_tiny_patch4_32"
# what may differ between two builds of one ONNX: where and when, and the bytes TensorRT wrote
PER_BUILD = {"engine", "onnx", "sha256", "size_bytes", "build_seconds", "created", "built_with", "vitprune", "tensorrt"}


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    return export_cache(TINY, "topk", rate=0.1)[1].path


@pytest.fixture(scope="module")
def both_engines(tiny_onnx, tmp_path_factory):
    """The same ONNX built by `vitprune build` and by a bundle's build.sh → portable.trt_build (rtx-generic, fp16)."""
    folder = tmp_path_factory.mktemp("engines")
    built = build_engine(tiny_onnx, "rtx-generic", output=folder / "cli.engine")
    bundled = bundle(tiny_onnx, "rtx-generic", folder / "bundle")
    environment = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(
        ["bash", "build.sh"], cwd=bundled.path, capture_output=True, text=True, env=environment, timeout=600
    )
    assert run.returncode == 0, run.stdout + run.stderr
    engine_name = json.loads((bundled.path / "bundle.json").read_text())["engine"]
    return built.path, bundled.path / engine_name


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_vitprune_build_and_the_bundle_write_the_same_description(both_engines):
    cli_engine, bundle_engine = both_engines
    from_cli = schema.read_engine_description(cli_engine, required=True)
    from_bundle = schema.read_engine_description(bundle_engine, required=True)
    assert from_cli["schema"] == from_bundle["schema"] == schema.SCHEMA
    assert set(from_cli) == set(from_bundle)
    assert (from_cli["built_with"], from_bundle["built_with"]) == ("vitprune build", "portable.trt_build")
    same = {key: from_cli[key] for key in from_cli if key not in PER_BUILD | {"builder"}}
    assert same == {key: from_bundle[key] for key in same}
    assert from_cli["io"] == [
        {"name": "images", "mode": "input", "dtype": "float32", "shape": [-1, 3, 32, 32]},
        {"name": "logits", "mode": "output", "dtype": "float32", "shape": [-1, 10]},
    ]
    assert from_cli["precision"] == "fp16" and from_cli["device"] == "rtx-generic"
    assert from_cli["onnx_metadata"]["keep_counts"] == [59, 54, 49, 45, 41, 37]
    # the builder settings agree but for the TensorRT version they were made for: the installed one, or the profile's
    cli_builder, bundle_builder = dict(from_cli["builder"]), dict(from_bundle["builder"])
    assert bundle_builder.pop("tensorrt_version") == "1.0"
    assert cli_builder.pop("tensorrt_version") == from_cli["tensorrt"]["version"] == from_bundle["tensorrt"]["version"]
    bundle_builder.pop("timing_cache"), cli_builder.pop("timing_cache")
    assert cli_builder == bundle_builder
    for engine, description in ((cli_engine, from_cli), (bundle_engine, from_bundle)):
        assert description["size_bytes"] == engine.stat().st_size
        assert engine_description(engine) == description  # the TensorRT runner's reader


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_compare_refuses_an_engine_description_in_one_line(both_engines):
    cli_engine, _ = both_engines
    with pytest.raises(VitPruneError, match="describes an engine .*vitprune profile .* --backend trt"):
        load_result(schema.description_path(cli_engine))
    result = CliRunner().invoke(app, ["compare", str(schema.description_path(cli_engine))])
    assert result.exit_code == 2 and "describes an engine" in result.output


def test_trtexec_builds_are_described_by_the_same_writer(tmp_path):
    """A bundle's `build.sh --trtexec` has no Python builder: engine_description.py describes trtexec's engine."""
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"ENGINE BYTES")
    settings = {
        "device": "jetson-orin-nano",
        "profile": None,
        "flavour": "tensorrt",
        "tensorrt_version": "10.3",
        "precision": "fp16",
        "precision_source": "weakly typed network, FP16 builder flag",
    }
    (tmp_path / "build_settings.json").write_text(json.dumps(settings))
    (tmp_path / "metadata.json").write_text(json.dumps({"model": "deit_tiny_patch16_224", "keep_counts": [186]}))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitprune_export.portable.engine_description",
            "--engine",
            str(engine),
            "--onnx",
            "model.onnx",
            "--settings",
            str(tmp_path / "build_settings.json"),
            "--metadata",
            str(tmp_path / "metadata.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    description = engine_description(engine)
    assert description["built_with"] == "trtexec" and description["io"] is None
    assert (description["device"], description["precision"]) == ("jetson-orin-nano", "fp16")
    assert description["size_bytes"] == len(b"ENGINE BYTES")
    assert description["onnx_metadata"]["keep_counts"] == [186]
    assert description["tensorrt"] == {"flavour": "tensorrt", "version": "10.3"}


def test_a_description_from_a_newer_vitprune_or_a_broken_file_is_one_line(tmp_path):
    engine = tmp_path / "m.engine"
    schema.description_path(engine).write_text("{")
    with pytest.raises(schema.EngineDescriptionError, match="is not valid JSON"):
        schema.read_engine_description(engine)
    schema.description_path(engine).write_text(json.dumps({"schema": "vitprune.engine/1", "engine": "m.engine"}))
    with pytest.raises(
        schema.EngineDescriptionError, match="lacks onnx_metadata, device, precision, builder, tensorrt"
    ):
        schema.read_engine_description(engine)
    with pytest.raises(schema.EngineDescriptionError, match="does not exist"):
        schema.read_engine_description(tmp_path / "other.engine", required=True)
    assert schema.read_engine_description(tmp_path / "other.engine") == {}
