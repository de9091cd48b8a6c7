"""The cases of test_openvino.py, run there in a pytest of their own (see why there).

OpenVINO as a CPU backend (``ov-cpu``): the settings it runs and records (f32 always said), the parity check
against ONNX Runtime, the compiled-model cache under the user's folder, INT8 Q/DQ files, the backends in
profile, bench (one table with ONNX Runtime), eval, plan and check, and the bad-input lines."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.measure.results import load_result

pytest.importorskip("openvino", reason="OpenVINO is an extra: pip install -e '.[dev]' installs it")

TINY = "vitprune_tiny_patch4_32"
runner = CliRunner()


def _profile(path, *extra):
    return runner.invoke(
        app, ["profile", str(path), "--backend", "ov-cpu", "--warm-up", "1", "--iterations", "3", *extra]
    )


def test_ov_cpu_profiles_an_export_in_f32_checked_against_onnx_runtime(export_cache, tmp_path, monkeypatch):
    import vitprune_export

    _, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VITPRUNE_CACHE", raising=False)
    result = _profile(exported.path, "--threads", "1", "-o", "r.json")
    assert result.exit_code == 0, result.output
    data = load_result(tmp_path / "r.json")
    assert (data["backend"], data["precision"], data["keep_counts"]) == ("ov-cpu", "fp32", exported.keep_counts)
    settings = data["settings"]
    assert settings["inference_precision"] == "f32" and settings["compiled_inference_precision"] == "f32"
    assert (settings["threads"], settings["streams"], settings["hint"], settings["chosen_by"]) == (
        1,
        1,
        "LATENCY",
        "given",
    )
    assert settings["parity_vs_onnxruntime"]["relative"] <= 1e-4
    cached = list((tmp_path / "results" / "cache" / "openvino").glob("*.blob"))
    assert cached, "the compiled model is cached under the folder the command runs in"
    package = vitprune_export.__path__[0]
    assert not any(str(path).startswith(package) for path in tmp_path.rglob("*"))
    again = _profile(exported.path, "--threads", "1", "-o", "r.json", "--force")
    assert load_result(tmp_path / "r.json")["settings"]["parity_vs_onnxruntime"]["remembered"] is True, again.output


def test_a_parity_miss_is_refused_as_not_fp32(export_cache, tmp_path, monkeypatch):
    from vitprune_export.measure.runners import ov_runner

    _, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.setenv("VITPRUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(ov_runner, "PARITY_BOUND", 0.0)
    with pytest.raises(VitPruneError, match="this is not an fp32 measurement"):
        ov_runner.OpenVinoRunner(threads=1).load(exported.path)


def test_an_int8_qdq_file_runs_at_its_precision(export_cache, tmp_path, monkeypatch):
    from vitprune_export.export.quantize import quantize_onnx
    from vitprune_export.measure.runners import get_runner

    _, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.setenv("VITPRUNE_CACHE", str(tmp_path / "cache"))
    quantized = tmp_path / "int8.onnx"
    batches = [np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)]
    quantize_onnx(exported.path, quantized, batches, data="random")
    ov = get_runner("ov-cpu", threads=1)
    ov.load(quantized)
    assert ov.precision == "int8" and "parity_vs_onnxruntime" not in ov.settings
    assert ov.infer() > 0 and ov.output().shape == (1, 10)


@pytest.mark.parametrize(
    ("backend", "fragment"),
    [("ov-gpu", "OpenVINO lists no GPU device here"), ("ov-npu", "OpenVINO lists no NPU device here")],
)
def test_a_device_openvino_does_not_list_is_one_line(export_cache, tmp_path, backend, fragment):
    import openvino

    if any(name.startswith(backend[3:].upper()) for name in openvino.Core().available_devices):
        pytest.skip(f"this machine has an OpenVINO {backend[3:].upper()}")
    _, exported = export_cache(TINY, "topk", rate=0.1)
    result = runner.invoke(app, ["profile", str(exported.path), "--backend", backend, "-o", str(tmp_path / "r.json")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and fragment in text and "--backend ov-cpu" in text, result.output
    assert "Traceback" not in result.output and not (tmp_path / "r.json").exists()


def test_a_plugin_graph_names_the_rewrite(export_cache, tmp_path):
    _, exported = export_cache(TINY, "tome", rate=0.1, plugins=True)
    result = runner.invoke(app, ["profile", str(exported.path), "--backend", "ov-cpu", "-o", str(tmp_path / "r.json")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "which OpenVINO cannot run" in text and "--to standard" in text, result.output


def test_without_openvino_the_line_says_how_to_install_it(export_cache, monkeypatch):
    from vitprune_export.measure import bench

    _, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    result = runner.invoke(app, ["profile", str(exported.path), "--backend", "ov-cpu"])
    assert result.exit_code == 2 and "pip install 'vitprune[openvino]'" in " ".join(result.output.split())
    assert "OpenVINO is not installed" in bench.unavailable_reason("ov-cpu")


def test_bench_puts_both_cpu_runtimes_in_one_table(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPRUNE_CACHE", str(tmp_path / "cache"))
    arguments = ["bench", "-m", TINY, "--methods", "none,topk", "--rates", "0.1", "--backends", "ort-cpu,ov-cpu"]
    arguments += ["--threads", "1", "--iterations", "4", "--chunk", "2", "--warm-up", "1", "-o", str(tmp_path / "r")]
    result = runner.invoke(app, [*arguments, "--no-plot"])
    assert result.exit_code == 0, result.output
    results = [json.loads(path.read_text()) for path in (tmp_path / "r").glob("*/*.json")]
    assert sorted((r["backend"], r["method"]) for r in results) == [
        ("ort-cpu", "none"),
        ("ort-cpu", "topk"),
        ("ov-cpu", "none"),
        ("ov-cpu", "topk"),
    ]
    ov = [r for r in results if r["backend"] == "ov-cpu"]
    assert all(r["settings"]["inference_precision"] == "f32" and r["settings"]["threads"] == 1 for r in ov)
    assert "ort-cpu" in result.output and "ov-cpu" in result.output and "4 cells: 4 measured" in result.output
    assert len(list((tmp_path / "r" / "onnx").glob("*.onnx"))) == 2  # one export per variant, both runtimes


def test_eval_on_ov_cpu_agrees_with_pytorch(tmp_path, monkeypatch):
    monkeypatch.setenv("VITPRUNE_CACHE", str(tmp_path))
    arguments = ["eval", "--model", TINY, "--weights", "random", "--method", "topk", "--rate", "0.1"]
    result = runner.invoke(app, [*arguments, "--backend", "ov-cpu", "--json"])
    assert result.exit_code == 0, result.output
    accuracy = json.loads(result.stdout)["accuracy"]
    assert accuracy["images"] == 360 and accuracy["agreement"] >= 0.99


def test_check_reports_openvino_and_its_devices():
    import openvino

    result = runner.invoke(app, ["check", "--json"])
    report = json.loads(result.stdout)
    assert report["openvino"]["version"] == openvino.__version__ and "CPU" in report["openvino"]["devices"]


def test_plan_measures_its_curves_on_ov_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    arguments = ["plan", "--model", TINY, "--weights", "random", "--method", "topk", "--backend", "ov-cpu"]
    arguments += ["--threads", "1", "--device-name", "ci", "--speedup", "1", "--points", "3", "--refine", "0"]
    result = runner.invoke(app, [*arguments, "--iterations", "3", "--warm-up", "1", "--no-check", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    curves = json.loads((tmp_path / summary["curves"]).read_text())
    assert curves["backend"] == "ov-cpu" and all(ms > 0 for ms in curves["curves"]["block"]["ms"])


def test_profile_on_ov_cpu_parses_the_file_once(export_cache, tmp_path, monkeypatch):
    import onnx

    _, exported = export_cache(TINY, "topk", rate=0.1)
    calls = []
    load = onnx.load_model

    def counting(source, *args, **kwargs):
        calls.append(str(source))
        return load(source, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting)
    monkeypatch.setattr(onnx, "load_model", counting)
    result = _profile(exported.path, "--threads", "1", "-o", str(tmp_path / "r.json"))
    assert result.exit_code == 0, result.output
    assert calls.count(str(exported.path)) == 1, calls
