"""`vitprune build` (issue 5): profile → builder settings per TensorRT flavour, the TensorRT calls
they turn into (against a recording stand-in for the TensorRT module), fp16 for strongly typed
builds, and the error contract without TensorRT. Real builds are marked ``tensorrt``."""

import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from vitprune_export.build import (
    OnnxInput,
    builder_settings,
    convert_onnx_to_fp16,
    onnx_float_precision,
    onnx_inputs,
    onnx_plugin_ops,
    shape_profile,
)
from vitprune_export.cli import app
from vitprune_export.device_profiles import load_profile, profile_from_dict
from vitprune_export.errors import VitPruneError
from vitprune_export.standalone import trt_build
from vitprune_export.trt_env import tensorrt_available

DYNAMIC = [OnnxInput("images", ("batch", 3, 224, 224))]
TINY = "vitprune_tiny_patch4_32"


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    _, result = export_cache(TINY, "topk", rate=0.1)
    return result.path


# ---------------------------------------------------------------- profile → settings, per flavour


def test_tensorrt_10_3_is_weakly_typed_with_the_fp16_flag():
    settings = builder_settings(load_profile("jetson-orin-nano"), "tensorrt", "10.3.0.30", DYNAMIC)
    assert not settings.strongly_typed
    assert settings.builder_flags == ["FP16"]
    assert not settings.convert_onnx_to_fp16
    assert settings.precision == "fp16"
    assert settings.workspace_bytes == 1024 * 2**20
    assert settings.builder_optimization_level == 3
    assert settings.timing_cache == "engines/timing/jetson-orin-nano.timing.cache"
    assert settings.shape_profile == {"images": [[1, 3, 224, 224], [1, 3, 224, 224], [8, 3, 224, 224]]}
    assert settings.compute_capabilities == []


def test_fp32_override_drops_the_flag():
    settings = builder_settings(load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp16=False)
    assert settings.builder_flags == [] and settings.precision == "fp32"


def test_tensorrt_11_is_strongly_typed_and_converts_an_fp32_onnx():
    settings = builder_settings(load_profile("h100"), "tensorrt", "11.0.0", DYNAMIC)
    assert settings.strongly_typed
    assert settings.builder_flags == []
    assert settings.convert_onnx_to_fp16 and settings.precision == "fp16"
    assert "converted to fp16" in settings.precision_source
    assert settings.timing_cache == "engines/timing/h100.timing.cache"


def test_strongly_typed_keeps_an_fp16_onnx_as_it_is():
    settings = builder_settings(load_profile("h100"), "tensorrt", "11.1", DYNAMIC, onnx_precision="fp16", fp16=False)
    assert not settings.convert_onnx_to_fp16
    assert settings.precision == "fp16"
    assert any("keeps the ONNX's fp16 types" in note for note in settings.notes)


def test_tensorrt_rtx_has_no_timing_cache_and_targets_compute_capabilities():
    settings = builder_settings(load_profile("rtx4090"), "tensorrt_rtx", "1.7.1.116", DYNAMIC, timing_cache="x.cache")
    assert settings.strongly_typed and settings.builder_flags == []
    assert settings.timing_cache is None
    assert settings.compute_capabilities == ["SM89"]
    assert any("no timing cache" in note for note in settings.notes)
    portable = builder_settings(load_profile("rtx-generic"), "tensorrt_rtx", "1.7", DYNAMIC)
    assert portable.compute_capabilities == [] and portable.shape_profile["images"][2][0] == 32


def test_timing_cache_override_and_plain_tensorrt_ignores_compute_capabilities():
    settings = builder_settings(load_profile("rtx4090"), "tensorrt", "10.9", DYNAMIC, timing_cache="/tmp/t.cache")
    assert settings.timing_cache == "/tmp/t.cache" and settings.compute_capabilities == []
    assert settings.builder_flags == ["FP16"]


@pytest.mark.parametrize(
    "profile, flavour, version, fragment",
    [
        ("rtx-generic", "tensorrt", "10.3", "needs TensorRT for RTX (pip install tensorrt-rtx)"),
        ("jetson-orin-nano", "tensorrt", "8.6.1", "TensorRT 8.6.1 is too old; vitprune needs TensorRT 10.3 or later"),
        ("cpu", "tensorrt", "10.3", "uses backend 'ort-cpu': there is no engine to build"),
    ],
)
def test_impossible_combinations_are_one_line_errors(profile, flavour, version, fragment):
    with pytest.raises(VitPruneError) as error:
        builder_settings(load_profile(profile), flavour, version, DYNAMIC)
    assert fragment in str(error.value)


def test_shape_profile_static_batch_and_bad_axes():
    profile = load_profile("jetson-orin-nano")
    shapes, notes = shape_profile([OnnxInput("images", (1, 3, 32, 32))], profile)
    assert shapes is None and "static batch of 1" in notes[0] and "--dynamic-batch" in notes[0]
    with pytest.raises(VitPruneError, match="dynamic axes .* besides the batch"):
        shape_profile([OnnxInput("images", ("batch", 3, "h", 32))], profile)


# ---------------------------------------------------------------- settings → TensorRT calls (recording stand-in)


class _Recorder:
    def __init__(self, calls, name):
        self._calls, self._name = calls, name

    def __getattr__(self, attribute):
        def call(*args, **kwargs):
            self._calls.append((f"{self._name}.{attribute}", args, kwargs))
            return {"create_network": _Recorder(self._calls, "network"),
                    "create_builder_config": _Recorder(self._calls, "config"),
                    "create_optimization_profile": _Recorder(self._calls, "profile"),
                    "create_timing_cache": _Recorder(self._calls, "cache"),
                    "build_serialized_network": b"ENGINE",
                    "serialize": b"CACHE",
                    "parse_from_file": True,
                    "set_timing_cache": True}.get(attribute)
        return call

    def __setattr__(self, attribute, value):
        if attribute.startswith("_"):
            object.__setattr__(self, attribute, value)
        else:
            self._calls.append((f"{self._name}.{attribute}=", (value,), {}))


def fake_tensorrt(calls):
    enum = lambda **members: types.SimpleNamespace(**members)  # noqa: E731
    module = types.SimpleNamespace(
        __version__="10.3.0",
        Logger=type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda self, level=None: None}),
        Builder=lambda logger: _Recorder(calls, "builder"),
        OnnxParser=lambda network, logger: _Recorder(calls, "parser"),
        NetworkDefinitionCreationFlag=enum(STRONGLY_TYPED=5),
        MemoryPoolType=enum(WORKSPACE="workspace"),
        BuilderFlag=enum(FP16="fp16-flag"),
        ComputeCapability=enum(SM89="sm89", CURRENT="current"),
    )
    return module


def test_weakly_typed_settings_become_fp16_flag_profile_and_timing_cache(tmp_path):
    calls = []
    settings = builder_settings(load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC,
                                timing_cache=tmp_path / "t.cache").for_trt_build()
    engine, cache = trt_build.build_serialized_engine(fake_tensorrt(calls), "m.onnx", settings)
    names = [c[0] for c in calls]
    assert (engine, cache) == (b"ENGINE", b"CACHE")
    assert ("builder.create_network", (0,), {}) in calls  # no STRONGLY_TYPED, no EXPLICIT_BATCH
    assert ("config.set_flag", ("fp16-flag",), {}) in calls
    assert ("config.set_memory_pool_limit", ("workspace", 2**30), {}) in calls
    assert ("config.builder_optimization_level=", (3,), {}) in calls
    assert ("profile.set_shape", ("images", (1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224)), {}) in calls
    assert ("config.create_timing_cache", (b"",), {}) in calls  # no cache file yet: a fresh one
    assert names.index("config.set_timing_cache") < names.index("builder.build_serialized_network")


def test_strongly_typed_rtx_settings_set_the_flag_and_capabilities_and_no_cache():
    calls = []
    settings = builder_settings(load_profile("rtx4090"), "tensorrt_rtx", "1.7", DYNAMIC).for_trt_build()
    _, cache = trt_build.build_serialized_engine(fake_tensorrt(calls), "m.onnx", settings)
    names = [c[0] for c in calls]
    assert ("builder.create_network", (1 << 5,), {}) in calls
    assert "config.set_flag" not in names
    assert "config.create_timing_cache" not in names and cache is None
    assert ("config.num_compute_capabilities=", (1,), {}) in calls
    assert ("config.set_compute_capability", ("sm89", 0), {}) in calls


def test_parser_errors_name_the_node_and_hint_at_the_plugin_library():
    error = types.SimpleNamespace(node_name=lambda: "/blocks.0/topk", node_operator=lambda: "VitPruneTopKSelect",
                                  desc=lambda: "Plugin not found", node=lambda: 7)
    parser = types.SimpleNamespace(num_errors=1, get_error=lambda i: error)
    [line] = trt_build.parser_errors(parser)
    assert line.startswith("node '/blocks.0/topk' (VitPruneTopKSelect): Plugin not found")
    assert "--plugins libvitprune_plugins.so" in line


def test_a_failed_build_raises_build_error():
    calls = []
    module = fake_tensorrt(calls)
    original = module.Builder

    def builder(logger):
        recorder = original(logger)
        object.__setattr__(recorder, "build_serialized_network", lambda network, config: None)
        return recorder

    module.Builder = builder
    settings = builder_settings(load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp16=False).for_trt_build()
    settings["timing_cache"] = None
    with pytest.raises(trt_build.BuildError, match="could not build the engine"):
        trt_build.build_serialized_engine(module, "m.onnx", settings)


# ---------------------------------------------------------------- ONNX facts and fp16 conversion


def test_onnx_facts_of_an_export(tiny_onnx):
    assert onnx_inputs(tiny_onnx) == [OnnxInput("images", ("batch", 3, 32, 32))]
    assert onnx_plugin_ops(tiny_onnx) == []
    assert onnx_float_precision(tiny_onnx) == "fp32"


def test_fp16_conversion_keeps_fp32_io_and_stays_close(tiny_onnx, tmp_path):
    import onnxruntime as ort

    pytest.importorskip("onnxconverter_common", reason="fp16 conversion for strongly typed TensorRT needs onnxconverter-common")

    target = tmp_path / "fp16.onnx"
    convert_onnx_to_fp16(tiny_onnx, target, [])
    assert onnx_float_precision(target) == "fp16"
    assert onnx_inputs(target) == onnx_inputs(tiny_onnx)
    model = onnx.load(str(target))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    images = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    reference = ort.InferenceSession(str(tiny_onnx)).run(None, {"images": images})[0]
    converted = ort.InferenceSession(str(target)).run(None, {"images": images})[0]
    assert converted.dtype == np.float32
    assert np.abs(reference - converted).max() <= 0.1 * np.abs(reference).max()


def plugin_onnx(path: Path) -> Path:
    node = helper.make_node("VitPruneTopKSelect", ["images"], ["logits"], domain="vitprune", keep=4)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vitprune", 1)]), str(path))
    return path


def test_plugin_nodes_are_found_and_need_a_library(tmp_path, monkeypatch):
    import vitprune_export.trt_env as trt_env

    path = plugin_onnx(tmp_path / "plugins.onnx")
    assert onnx_plugin_ops(path) == ["VitPruneTopKSelect"]
    monkeypatch.setattr(trt_env, "default_plugin_library", lambda: None)
    result = CliRunner().invoke(app, ["build", str(path), "--profile", "jetson-orin-nano", "-o", str(tmp_path / "x.engine")])
    assert result.exit_code == 2
    assert "plugin nodes (VitPruneTopKSelect)" in result.output and "--plugins" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins.onnx"]


# ---------------------------------------------------------------- the CLI without TensorRT


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed: the missing-TensorRT path cannot be exercised")
def test_build_without_tensorrt_exits_2_and_leaves_nothing(tiny_onnx, tmp_path):
    engine = tmp_path / "out" / "tiny.engine"
    cache = tmp_path / "t.cache"
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", "jetson-orin-nano", "-o", str(engine),
                                      "--timing-cache", str(cache)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("error: TensorRT is not available")
    assert "Traceback" not in result.output
    assert not engine.exists() and not Path(str(engine) + ".json").exists() and not cache.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_build_dry_run_prints_the_settings_without_tensorrt(tiny_onnx):
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", "jetson-orin-nano", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)
    assert settings["shape_profile"] == {"images": [[1, 3, 32, 32], [1, 3, 32, 32], [8, 3, 32, 32]]}
    if not tensorrt_available():
        assert (settings["flavour"], settings["tensorrt_version"], settings["builder_flags"]) == ("tensorrt", "10.3", ["FP16"])


def test_build_with_a_cpu_profile_says_there_is_no_engine(tiny_onnx):
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", "cpu"])
    assert result.exit_code == 2
    assert "uses backend 'ort-cpu': there is no engine to build" in result.output


# ---------------------------------------------------------------- real builds (TensorRT + GPU)


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="needs TensorRT Python bindings")
def test_real_build_writes_engine_json_and_timing_cache(tiny_onnx, tmp_path):
    from vitprune_export.build import build_engine, gpu_name

    if gpu_name() is None:
        pytest.skip("needs an NVIDIA GPU")
    from vitprune_export.trt_env import import_tensorrt

    flavour = import_tensorrt().flavour
    profile = load_profile("rtx-generic" if flavour == "tensorrt_rtx" else "h100")
    engine = tmp_path / "tiny.engine"
    result = build_engine(tiny_onnx, profile, output=engine, fp16=False, timing_cache=tmp_path / "t.cache")
    assert engine.stat().st_size > 0
    description = json.loads(Path(str(engine) + ".json").read_text())
    assert description["onnx_metadata"]["keep_counts"] == [59, 54, 49, 45, 41, 37]
    assert description["tensorrt"]["flavour"] == flavour and description["gpu"]
    if flavour == "tensorrt":
        assert (tmp_path / "t.cache").stat().st_size > 0
        again = build_engine(tiny_onnx, profile, output=tmp_path / "again.engine", fp16=False, timing_cache=tmp_path / "t.cache")
        assert again.size_bytes > 0
    assert result.settings.precision == "fp32"


def _tensorrt_rtx_importable() -> bool:
    try:
        import tensorrt_rtx  # noqa: F401
    except Exception:
        return False
    return True


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_rtx_importable(), reason="needs TensorRT for RTX (pip install tensorrt-rtx)")
def test_tensorrt_rtx_builds_ahead_of_time_even_without_a_gpu(tiny_onnx, tmp_path):
    """TensorRT for RTX compiles ahead of time on the CPU; the engine's kernels are JIT-compiled on the GPU later."""
    pytest.importorskip("onnxconverter_common")
    from vitprune_export.build import build_engine

    engine = tmp_path / "tiny_rtx.engine"
    result = build_engine(tiny_onnx, "rtx4090", output=engine)
    assert result.settings.flavour == "tensorrt_rtx" and result.settings.strongly_typed
    assert result.settings.precision == "fp16" and result.settings.convert_onnx_to_fp16
    assert result.timing_cache is None and engine.stat().st_size == result.size_bytes > 0
    description = json.loads(Path(str(engine) + ".json").read_text())
    assert description["builder"]["compute_capabilities"] == ["SM89"]
    assert description["onnx_metadata"]["keep_counts"] == [59, 54, 49, 45, 41, 37]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_rtx.engine", "tiny_rtx.engine.json"]


@pytest.mark.tensorrt
@pytest.mark.skipif(not _tensorrt_rtx_importable(), reason="needs TensorRT for RTX (pip install tensorrt-rtx)")
def test_real_parser_reports_a_missing_plugin_by_node(tmp_path):
    import tensorrt_rtx

    path = plugin_onnx(tmp_path / "plugins.onnx")
    with pytest.raises(trt_build.BuildError) as error:
        trt_build.build_serialized_engine(tensorrt_rtx, path, {"strongly_typed": True, "workspace_bytes": 2**28})
    message = str(error.value)
    assert "ONNX parser rejected" in message and "(VitPruneTopKSelect)" in message and "--plugins" in message


def test_profile_with_unknown_key_fails_before_tensorrt(tiny_onnx, tmp_path):
    path = tmp_path / "odd.toml"
    path.write_text("[build]\nbackend = 'trt'\nworkspace = 4096\n")
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", str(path)])
    assert result.exit_code == 2
    assert "unknown key 'build.workspace' (did you mean 'workspace_mb'?)" in result.output
    with pytest.raises(VitPruneError):
        profile_from_dict({"build": {"workspace": 1}}, "odd")
