"""Backend runners: same interface, right outputs, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import base_model, requires_gpu
from vitprune_export import apply_method
from vitprune_export.errors import VitPruneError
from vitprune_export.measure.runners import get_runner, list_backends

TINY = "vitprune_tiny_patch4_32"


def tiny(method: str = "topk", rate: float = 0.1):
    return apply_method(base_model(TINY), method, rate=rate).eval()


def test_backends_listed():
    assert list_backends() == ["torch-cpu", "torch-cuda", "ort-cpu", "ov-cpu", "ov-gpu", "ov-npu", "trt"]


def test_unknown_backend_names_the_near_miss():
    with pytest.raises(VitPruneError, match=r"unknown backend 'ort-cpux' \(did you mean 'ort-cpu'"):
        get_runner("ort-cpux")


def test_fp16_is_refused_where_the_backend_cannot_measure_it():
    with pytest.raises(VitPruneError, match="measures fp32, not 'fp16'"):
        get_runner("torch-cpu", precision="fp16")


def test_torch_cpu_runs_the_model_and_records_latency():
    network = tiny()
    runner = get_runner("torch-cpu")
    loaded = runner.load(network, batch=3, model_name=TINY)
    assert (loaded.model, loaded.method, loaded.rate) == (TINY, "topk", 0.1)
    assert loaded.keep_counts == [59, 54, 49, 45, 41, 37]
    assert 0 < loaded.macs < loaded.baseline_macs
    assert runner.last_latency_ms is None
    latency = runner.infer()
    assert latency > 0 and runner.last_latency_ms == latency
    with torch.no_grad():
        expected = network(runner.images).numpy()
    assert runner.output().shape == (3, network.num_classes)
    np.testing.assert_allclose(runner.output(), expected, atol=1e-5)


def test_torch_runner_refuses_a_file(tmp_path):
    with pytest.raises(VitPruneError, match="runs a model spec"):
        get_runner("torch-cpu").load(tmp_path / "x.onnx")


def test_ort_cpu_matches_pytorch_on_a_dynamic_batch(export_cache):
    network, exported = export_cache(TINY, "topk", rate=0.1)
    runner = get_runner("ort-cpu", threads=1)
    loaded = runner.load(exported.path, batch=2)
    assert (loaded.model, loaded.method, loaded.rate) == (TINY, "topk", 0.1)
    assert loaded.keep_counts == exported.keep_counts
    assert loaded.macs is not None and loaded.macs < loaded.baseline_macs  # computed at export, read from the record
    assert runner.infer() > 0
    with torch.no_grad():
        expected = network(torch.from_numpy(runner.feed[runner.input_name])).numpy()
    assert float(np.abs(runner.output() - expected).max()) < 1e-4


def test_ort_cpu_static_batch_mismatch_is_a_clear_error(export_cache, tmp_path):
    import onnx

    _, exported = export_cache(TINY, "topk", rate=0.1)
    proto = onnx.load(str(exported.path))
    proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1  # as a static-batch export declares it
    static = tmp_path / "static.onnx"
    onnx.save(proto, str(static))
    with pytest.raises(
        VitPruneError, match="static batch of 1, not 4; pass --batch 1 or re-export with --dynamic-batch"
    ):
        get_runner("ort-cpu").load(static, batch=4)


def test_ort_cpu_missing_or_broken_file(tmp_path):
    with pytest.raises(VitPruneError, match="does not exist"):
        get_runner("ort-cpu").load(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(VitPruneError, match="not a readable ONNX file"):
        get_runner("ort-cpu").load(broken)


def test_ort_cpu_keeps_given_settings_and_records_them(export_cache):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    runner = get_runner("ort-cpu", threads=2, spinning="off", graph_optimization="extended")
    runner.load(exported.path, batch=1)
    recorded = {key: runner.settings[key] for key in ("threads", "spinning", "graph_optimization", "chosen_by")}
    assert recorded == {"threads": 2, "spinning": False, "graph_optimization": "extended", "chosen_by": "given"}
    options = runner.session.get_session_options()  # the session was built with them
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize(("spinning", "stop"), [("on", "1"), ("off", "")])
def test_ort_cpu_spinning_sessions_stop_spinning_when_a_query_returns(export_cache, spinning, stop):
    """Threads that spin on after a query would slow the next session timed in the same round."""
    _, exported = export_cache(TINY, "topk", rate=0.1)
    runner = get_runner("ort-cpu", threads=2, spinning=spinning, graph_optimization="all")
    runner.load(exported.path, batch=1)
    options = runner.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == ("1" if spinning == "on" else "0")
    if stop:
        assert options.get_session_config_entry("session.force_spinning_stop") == stop
    else:  # never set: reading it raises
        with pytest.raises(RuntimeError, match="force_spinning_stop"):
            options.get_session_config_entry("session.force_spinning_stop")


def test_ort_cpu_chooses_the_open_settings_by_timing_them(export_cache, monkeypatch):
    network, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.setattr("vitprune_export.portable.environment.physical_cores", lambda: 2)
    runner = get_runner("ort-cpu")
    runner.load(exported.path, batch=2)
    tuning = runner.settings["tuning_ms"]
    assert set(tuning) == {
        f"{threads} {spin} {level}"
        for threads, spin in (("2t", "spin"), ("2t", "nospin"), ("1t", "nospin"))
        for level in ("all", "extended")
    }
    settings = runner.settings
    chosen = f"{settings['threads']}t {'spin' if settings['spinning'] else 'nospin'} {settings['graph_optimization']}"
    assert tuning[chosen] == min(tuning.values()) and settings["chosen_by"] == "tuned"
    assert runner.threads == settings["threads"]  # what the result's environment reports
    runner.infer()
    with torch.no_grad():
        expected = network(torch.from_numpy(runner.feed[runner.input_name])).numpy()
    assert float(np.abs(runner.output() - expected).max()) < 1e-4


def test_runner_settings_errors_are_one_line():
    with pytest.raises(VitPruneError, match="spinning must be on, off or auto, not 'sometimes'"):
        get_runner("ort-cpu", spinning="sometimes")
    with pytest.raises(VitPruneError, match="graph optimisation must be one of disable, basic, extended, all"):
        get_runner("ort-cpu", graph_optimization="max")
    with pytest.raises(VitPruneError, match="compile mode must be one of default, reduce-overhead, max-autotune"):
        get_runner("torch-cpu", compile="fastest")
    with pytest.raises(VitPruneError, match="not both"):
        get_runner("torch-cuda", compile="reduce-overhead", cuda_graphs=True)


def test_torch_cpu_records_its_settings():
    runner = get_runner("torch-cpu", threads=1)
    runner.load(tiny(), batch=1)
    assert {key: runner.settings[key] for key in ("threads", "compile", "chosen_by")} == {
        "threads": 1,
        "compile": "eager",
        "chosen_by": "given",
    }
    assert torch.get_num_threads() == 1


def test_torch_cpu_compiled_model_matches_eager():
    network = tiny("tome")
    runner = get_runner("torch-cpu", threads=1, compile="default")
    runner.load(network, batch=2)
    runner.infer()
    with torch.no_grad():
        expected = network(runner.images).numpy()
    assert runner.settings["compile"] == "default"
    np.testing.assert_allclose(runner.output(), expected, atol=1e-4)


@requires_gpu
@pytest.mark.gpu
def test_cuda_graph_replay_matches_eager_and_follows_the_input():
    network = tiny("tome")
    runner = get_runner("torch-cuda", cuda_graphs=True)
    runner.load(network, batch=2)
    assert runner.settings["cuda_graphs"] is True
    for _ in range(2):  # replay reads the captured input buffer: new images, new output
        runner.images.copy_(torch.randn_like(runner.images))
        runner.infer()
        with torch.no_grad():
            expected = network(runner.images).float().cpu().numpy()
        np.testing.assert_allclose(runner.output(), expected, atol=1e-3)


@requires_gpu
@pytest.mark.gpu
def test_torch_cuda_matches_cpu():
    network = tiny()
    runner = get_runner("torch-cuda")
    runner.load(network, batch=2)
    assert runner.infer() > 0
    with torch.no_grad():
        expected = network.cpu()(runner.images.cpu()).numpy()
    np.testing.assert_allclose(runner.output(), expected, atol=1e-3)


def test_trt_runner_refuses_a_missing_engine_before_importing_tensorrt(tmp_path):
    with pytest.raises(VitPruneError, match="does not exist"):
        get_runner("trt").load(tmp_path / "missing.engine")


def test_trt_reads_the_engine_json_beside_the_engine(tmp_path):
    from vitprune_export.measure.runners.trt_runner import engine_description
    from vitprune_export.portable.engine_description import describe_engine, write_engine_description

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    assert engine_description(engine) == {}
    settings = {"device": "rtx4090", "precision": "fp16", "precision_source": "x", "flavour": "tensorrt_rtx"}
    written = describe_engine(
        engine,
        b"\0",
        "m.onnx",
        {"model": "vit_s"},
        settings,
        {"flavour": "tensorrt_rtx", "version": "1.7"},
        "vitprune build",
    )
    write_engine_description(engine, written)
    read = engine_description(engine)
    assert read["onnx_metadata"] == {"model": "vit_s"} and (read["device"], read["precision"]) == ("rtx4090", "fp16")
    (tmp_path / "m.engine.json").write_text('{"precision": "fp16", "onnx_metadata": {"model": "vit_s"}}')
    with pytest.raises(VitPruneError, match="is not a vitprune engine description"):
        engine_description(engine)
    (tmp_path / "m.engine.json").write_text('{"schema": "vitprune.engine/9", "precision": "fp16"}')
    with pytest.raises(VitPruneError, match="newer than this reader"):
        engine_description(engine)


def test_trt_without_tensorrt_or_gpu_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from vitprune_export.cli import app

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0")
    result = CliRunner().invoke(app, ["profile", str(engine), "--backend", "trt"])
    assert result.exit_code == 2, result.output
    assert any(text in result.output for text in ("TensorRT is not available", "no CUDA GPU", "could not deserialise"))
    assert "Traceback" not in result.output
