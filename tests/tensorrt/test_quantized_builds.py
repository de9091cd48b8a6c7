"""A Q/DQ file (vitprune quantize) through the builders: the settings per TensorRT flavour (the INT8/FP8
flag TensorRT 10.3 needs for explicit quantization, none under strong typing), FP8 refused for targets
without it, and the Jetson bundle whose real ``build.sh --trtexec`` passes ``--int8`` (under a stand-in
trtexec). The real TensorRT-for-RTX builds of every method's INT8 file are in test_tensorrt_matrix.py."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import trtexec_standin
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.tensorrt.profiles import load_profile, profile_from_dict
from vitprune_export.tensorrt.settings import OnnxFacts, OnnxInput, builder_settings, onnx_quantized_precision

TINY = "vitprune_tiny_patch4_32"
STATIC = [OnnxInput("images", (1, 3, 32, 32))]


@pytest.fixture(scope="module")
def quantized(export_cache, tmp_path_factory):
    """The tiny topk model in int8 and fp8 Q/DQ (random calibration images)."""
    from vitprune_export.export.quantize import quantize_onnx

    _, exported = export_cache(TINY, "topk", rate=0.1)
    folder = tmp_path_factory.mktemp("qdq")
    batches = [np.random.default_rng(1).standard_normal((8, 3, 32, 32)).astype(np.float32) for _ in range(2)]
    paths = {"fp32": exported.path}
    for precision in ("int8", "fp8"):
        paths[precision] = folder / f"tiny_topk_{precision}.onnx"
        quantize_onnx(exported.path, paths[precision], batches, data="random", precision=precision)
    return paths


def test_the_facts_of_a_qdq_file_say_its_quantized_type(quantized):
    import onnx

    for precision in ("int8", "fp8"):
        facts = OnnxFacts.read(quantized[precision])
        assert facts.precision == precision
        assert facts.fp32_layers  # the token choice, Softmax and LayerNorm: kept fp32 under an FP16 flag
    assert onnx_quantized_precision(onnx.load(str(quantized["fp32"]))) is None
    assert OnnxFacts.read(quantized["fp32"]).precision == "fp32"


def test_tensorrt_10_3_gets_the_int8_flag_and_fp16_for_the_float_parts():
    jetson = load_profile("jetson-orin-nano")
    settings = builder_settings(jetson, "tensorrt", "10.3.0.30", STATIC, "int8", fp32_layers=["node_layer_norm"])
    assert settings.precision == "int8" and not settings.strongly_typed and not settings.convert_onnx_to_fp16
    assert settings.builder_flags == ["INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"]
    assert settings.fp32_layers == ["node_layer_norm"] and "INT8 builder flag" in settings.precision_source
    plain = builder_settings(jetson, "tensorrt", "10.3", STATIC, "int8", fp16=False, fp32_layers=["node_layer_norm"])
    assert plain.builder_flags == ["INT8"] and plain.fp32_layers == []


@pytest.mark.parametrize(("flavour", "version"), [("tensorrt", "11.1"), ("tensorrt_rtx", "1.7")])
def test_strong_typing_takes_the_qdq_types_with_no_flag_and_no_conversion(flavour, version):
    profile = load_profile("rtx4090")
    settings = builder_settings(profile, flavour, version, STATIC, "int8", fp32_layers=["node_layer_norm"])
    assert settings.strongly_typed and settings.builder_flags == [] and not settings.convert_onnx_to_fp16
    assert settings.precision == "int8" and settings.fp32_layers == []
    assert any("float parts of a quantized ONNX stay fp32" in note for note in settings.notes)
    assert builder_settings(profile, flavour, version, STATIC, "fp8").precision == "fp8"  # sm_89: FP8 is there


@pytest.mark.parametrize(
    ("profile", "flavour", "version", "message"),
    [
        ("jetson-orin-nano", "tensorrt", "10.3", "targets sm_87: no FP8 there"),
        ("rtx-generic", "tensorrt_rtx", "1.7", "targets sm_80, sm_86: no FP8 there"),
    ],
)
def test_fp8_is_refused_where_the_gpu_has_none(profile, flavour, version, message):
    with pytest.raises(VitPruneError, match=message):
        builder_settings(load_profile(profile), flavour, version, STATIC, "fp8")
    assert builder_settings(load_profile(profile), flavour, version, STATIC, "int8").precision == "int8"


def test_fp8_for_tensorrt_10_on_hopper_sets_the_fp8_flag():
    settings = builder_settings(load_profile("h100"), "tensorrt", "10.8", STATIC, "fp8")
    assert settings.builder_flags[:1] == ["FP8"] and settings.precision == "fp8"
    ampere = profile_from_dict({"device": {"arch": "sm_86"}, "build": {"backend": "trt"}}, "ampere")
    with pytest.raises(VitPruneError, match="targets sm_86: no FP8 there"):
        builder_settings(ampere, "tensorrt", "10.8", STATIC, "fp8")


def test_the_jetson_bundle_of_an_int8_file_builds_with_int8_and_fp16(quantized, tmp_path):
    folder = tmp_path / "orin"
    result = CliRunner().invoke(
        app, ["bundle", str(quantized["int8"]), "--profile", "jetson-orin-nano", "-o", str(folder)]
    )
    assert result.exit_code == 0, result.output
    settings = json.loads((folder / "build_settings.json").read_text())
    assert settings["precision"] == "int8" and settings["builder_flags"][:2] == ["INT8", "FP16"]
    assert "RESULT_SUFFIX=_int8\n" in (folder / "profile.sh").read_text()
    assert "VITPRUNE_PRECISION=--fp16\n" in (folder / "build.sh").read_text()
    trtexec, python, log = trtexec_standin(tmp_path)
    done = subprocess.run(
        ["bash", "./build.sh", "--trtexec"],
        cwd=folder,
        env=dict(os.environ, TRTEXEC=str(trtexec), PYTHON=str(python)),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    argv = json.loads(log.read_text())
    assert argv[0] == f"--onnx={quantized['int8'].name}" and argv[1].endswith("_int8.engine")
    assert "--int8" in argv and "--fp16" in argv and "--stronglyTyped" not in argv
    assert any(word.startswith("--layerPrecisions=") for word in argv) and "--precisionConstraints=prefer" in argv


def test_an_fp8_file_for_the_jetson_is_one_line_and_writes_nothing(quantized, tmp_path):
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(
        app, ["bundle", str(quantized["fp8"]), "--profile", "jetson-orin-nano", "-o", str(tmp_path / "orin")]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "targets sm_87: no FP8 there" in " ".join(result.output.split())
    assert sorted(tmp_path.iterdir()) == before
    built = CliRunner().invoke(app, ["build", str(quantized["fp8"]), "--profile", "jetson-orin-nano", "--dry-run"])
    assert built.exit_code == 2 and "no FP8 there" in " ".join(built.output.split())
