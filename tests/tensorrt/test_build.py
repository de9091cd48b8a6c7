"""`vitprune build`: profile → builder settings per TensorRT flavour, the TensorRT calls they turn
into (against a recording stand-in for the TensorRT module, including TensorRT 10.3's weak typing
with fp32 precision constraints), plugin nodes checked before parsing, and the error contract
without TensorRT. Real builds are marked ``tensorrt`` (the matrix is in test_tensorrt_matrix.py)."""

import json
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from tests.tensorrt.trt_checks import requires_tensorrt_rtx
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.export.fp16 import convert_onnx_to_fp16
from vitprune_export.portable import plugin_nodes, trt_build
from vitprune_export.tensorrt.env import tensorrt_available
from vitprune_export.tensorrt.profiles import load_profile, profile_from_dict
from vitprune_export.tensorrt.settings import (
    OnnxInput,
    builder_settings,
    onnx_float_precision,
    onnx_inputs,
    onnx_plugin_ops,
    shape_profile,
)

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
    settings = builder_settings(
        load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp16=False, fp32_layers=["node_layer_norm"]
    )
    assert settings.builder_flags == [] and settings.precision == "fp32" and settings.fp32_layers == []


def test_weak_typing_fp16_constrains_the_fragile_layers():
    settings = builder_settings(
        load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp32_layers=["node_layer_norm", "node_Softmax_3"]
    )
    assert settings.builder_flags == ["FP16", "PREFER_PRECISION_CONSTRAINTS"]
    assert settings.fp32_layers == ["node_layer_norm", "node_Softmax_3"]
    assert "2 layers constrained to fp32" in settings.precision_source
    assert settings.for_trt_build()["fp32_layers"] == ["node_layer_norm", "node_Softmax_3"]


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
            return {
                "create_network": _Recorder(self._calls, "network"),
                "create_builder_config": _Recorder(self._calls, "config"),
                "create_optimization_profile": _Recorder(self._calls, "profile"),
                "create_timing_cache": _Recorder(self._calls, "cache"),
                "build_serialized_network": b"ENGINE",
                "serialize": b"CACHE",
                "parse_from_file": True,
                "set_timing_cache": True,
            }.get(attribute)

        return call

    def __setattr__(self, attribute, value):
        if attribute.startswith("_"):
            object.__setattr__(self, attribute, value)
        else:
            self._calls.append((f"{self._name}.{attribute}=", (value,), {}))


class _FakeTensor:
    def __init__(self, name, dtype):
        self.name, self.dtype = name, dtype


class _FakeLayer:
    """A parsed layer: the ONNX parser's name and ``[ONNX Layer: node]`` metadata, its output types."""

    def __init__(self, calls, name, metadata, output_types):
        self.name, self.metadata, self._calls = name, metadata, calls
        self._outputs = [_FakeTensor(f"{name}_out{i}", dtype) for i, dtype in enumerate(output_types)]
        self.num_outputs = len(self._outputs)

    def get_output(self, index):
        return self._outputs[index]

    def set_output_type(self, index, dtype):
        self._calls.append((f"layer {self.name}.set_output_type", (index, dtype), {}))

    def __setattr__(self, attribute, value):
        if attribute == "precision":
            self._calls.append((f"layer {self.name}.precision=", (value,), {}))
        object.__setattr__(self, attribute, value)


class _FakeNetwork(_Recorder):
    def __init__(self, calls, layers):
        super().__init__(calls, "network")
        object.__setattr__(self, "_layers", layers)
        object.__setattr__(self, "num_layers", len(layers))

    def get_layer(self, index):
        return self._layers[index]


def fake_tensorrt(calls, layers=(), creators=("VitPruneTopKSelect",)):
    """A stand-in ``tensorrt`` 10.3 module that records every call; ``layers`` are (name, metadata, output types)."""
    enum = lambda **members: types.SimpleNamespace(**members)  # noqa: E731
    network_layers = [_FakeLayer(calls, *spec) for spec in layers]

    def builder(logger):
        recorder = _Recorder(calls, "builder")
        object.__setattr__(
            recorder,
            "create_network",
            lambda flags: (calls.append(("builder.create_network", (flags,), {})), _FakeNetwork(calls, network_layers))[
                1
            ],
        )
        return recorder

    registry = types.SimpleNamespace(
        get_creator=lambda name, version, namespace: object() if name in creators and version == "1" else None,
        load_library=lambda path: object(),
    )
    module = types.SimpleNamespace(
        __name__="tensorrt",
        __version__="10.3.0",
        float32="float32-type",
        float16="float16-type",
        int32="int32-type",
        get_plugin_registry=lambda: registry,
        Logger=type("Logger", (), {"WARNING": 2, "VERBOSE": 4, "__init__": lambda self, level=None: None}),
        Builder=builder,
        OnnxParser=lambda network, logger: _Recorder(calls, "parser"),
        NetworkDefinitionCreationFlag=enum(STRONGLY_TYPED=5),
        MemoryPoolType=enum(WORKSPACE="workspace"),
        BuilderFlag=enum(FP16="fp16-flag", PREFER_PRECISION_CONSTRAINTS="prefer-constraints-flag"),
        ComputeCapability=enum(SM89="sm89", CURRENT="current"),
    )
    return module


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """A plain ONNX file (no plugin nodes) for the stand-in builds, which read the file before parsing."""
    path = tmp_path_factory.mktemp("small") / "m.onnx"
    node = helper.make_node("Relu", ["images"], ["logits"], name="relu")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_weakly_typed_settings_become_fp16_flag_profile_and_timing_cache(tmp_path, small_onnx):
    calls = []
    settings = builder_settings(
        load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, timing_cache=tmp_path / "t.cache"
    ).for_trt_build()
    built = trt_build.build_serialized_engine(fake_tensorrt(calls), small_onnx, settings)
    names = [c[0] for c in calls]
    assert (built.engine, built.timing_cache) == (b"ENGINE", b"CACHE")
    assert ("builder.create_network", (0,), {}) in calls  # no STRONGLY_TYPED, no EXPLICIT_BATCH
    assert ("config.set_flag", ("fp16-flag",), {}) in calls
    assert ("config.set_memory_pool_limit", ("workspace", 2**30), {}) in calls
    assert ("config.builder_optimization_level=", (3,), {}) in calls
    assert ("profile.set_shape", ("images", (1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224)), {}) in calls
    assert ("config.create_timing_cache", (b"",), {}) in calls  # no cache file yet: a fresh one
    assert names.index("config.set_timing_cache") < names.index("builder.build_serialized_network")


def test_weak_typing_fp16_puts_fp32_precision_constraints_on_the_fragile_layers(small_onnx):
    """TensorRT 10.3 (JetPack 6): every layer of a listed ONNX node, found by the parser's metadata or its name,
    gets precision fp32 and fp32 float outputs; integer outputs (TopK indices) and other layers are left alone."""
    calls = []
    layers = [
        ("node_layer_norm", "[ONNX Layer: node_layer_norm]", ["float32-type"]),
        ("node_norm_401", "[ONNX Layer: node_norm]", ["float32-type"]),  # 2nd layer of a ReduceL2 node
        ("node_norm", "[ONNX Layer: node_norm]", ["float32-type"]),
        ("node_sort", None, ["float32-type", "int32-type"]),  # no metadata: matched by name
        ("node_linear", "[ONNX Layer: node_linear]", ["float32-type"]),
    ]
    settings = builder_settings(
        load_profile("jetson-orin-nano"),
        "tensorrt",
        "10.3",
        DYNAMIC,
        fp32_layers=["node_layer_norm", "node_norm", "node_sort"],
    ).for_trt_build()
    settings["timing_cache"] = None
    built = trt_build.build_serialized_engine(fake_tensorrt(calls, layers), small_onnx, settings)
    assert built.fp32_layers == 4
    assert ("config.set_flag", ("fp16-flag",), {}) in calls
    assert ("config.set_flag", ("prefer-constraints-flag",), {}) in calls
    constrained = sorted(name.split()[1].rsplit(".", 1)[0] for name, *_ in calls if name.endswith(".precision="))
    assert constrained == ["node_layer_norm", "node_norm", "node_norm_401", "node_sort"]
    assert all(args == ("float32-type",) for name, args, _ in calls if name.endswith(".precision="))
    assert ("layer node_sort.set_output_type", (0, "float32-type"), {}) in calls
    assert not any(name == "layer node_sort.set_output_type" and args[0] == 1 for name, args, _ in calls)
    assert not any("node_linear" in name for name, *_ in calls)


def test_strong_typing_never_sets_layer_precisions(small_onnx):
    calls = []
    layers = [("node_layer_norm", "[ONNX Layer: node_layer_norm]", ["float16-type"])]
    settings = builder_settings(load_profile("h100"), "tensorrt", "11.1", DYNAMIC, fp32_layers=["node_layer_norm"])
    assert settings.convert_onnx_to_fp16 and settings.fp32_layers == ["node_layer_norm"]
    data = settings.for_trt_build()
    data["timing_cache"] = None
    built = trt_build.build_serialized_engine(fake_tensorrt(calls, layers), small_onnx, data)
    assert built.fp32_layers == 0 and not any(".precision=" in name for name, *_ in calls)


def test_strongly_typed_rtx_settings_set_the_flag_and_capabilities_and_no_cache(small_onnx):
    calls = []
    settings = builder_settings(load_profile("rtx4090"), "tensorrt_rtx", "1.7", DYNAMIC).for_trt_build()
    built = trt_build.build_serialized_engine(fake_tensorrt(calls), small_onnx, settings)
    names = [c[0] for c in calls]
    assert ("builder.create_network", (1 << 5,), {}) in calls
    assert "config.set_flag" not in names
    assert "config.create_timing_cache" not in names and built.timing_cache is None
    assert ("config.num_compute_capabilities=", (1,), {}) in calls
    assert ("config.set_compute_capability", ("sm89", 0), {}) in calls


def test_parser_errors_name_the_node_and_hint_at_the_plugin_library():
    error = types.SimpleNamespace(
        node_name=lambda: "/blocks.0/topk",
        node_operator=lambda: "VitPruneTopKSelect",
        desc=lambda: "Plugin not found",
        node=lambda: 7,
    )
    parser = types.SimpleNamespace(num_errors=1, get_error=lambda i: error)
    [line] = trt_build.parser_errors(parser)
    assert line.startswith("node '/blocks.0/topk' (VitPruneTopKSelect): Plugin not found")
    assert "--plugins libvitprune_plugins.so" in line


def test_a_failed_build_raises_build_error(small_onnx):
    calls = []
    module = fake_tensorrt(calls)
    original = module.Builder

    def builder(logger):
        recorder = original(logger)
        object.__setattr__(recorder, "build_serialized_network", lambda network, config: None)
        return recorder

    module.Builder = builder
    settings = builder_settings(
        load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp16=False
    ).for_trt_build()
    settings["timing_cache"] = None
    with pytest.raises(trt_build.BuildError, match="could not build the engine"):
        trt_build.build_serialized_engine(module, small_onnx, settings)


# ---------------------------------------------------------------- ONNX facts and fp16 conversion


def test_onnx_facts_of_an_export(tiny_onnx):
    assert onnx_inputs(tiny_onnx) == [OnnxInput("images", ("batch", 3, 32, 32))]
    assert onnx_plugin_ops(tiny_onnx) == []
    assert onnx_float_precision(tiny_onnx) == "fp32"


def test_fp16_conversion_keeps_fp32_io_and_stays_close(tiny_onnx, tmp_path):
    import onnxruntime as ort

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
    node = helper.make_node(
        "VitPruneTopKSelect",
        ["images"],
        ["logits"],
        name="topk0",
        domain="vitprune",
        keep=4,
        plugin_version="1",
        plugin_namespace="",
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
    )
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vitprune", 1)]),
        str(path),
    )
    return path


def test_plugin_nodes_are_read_without_the_onnx_package(tmp_path, export_cache):
    """The standalone reader (the device has no onnx package) finds what onnx finds: names, op types, attributes."""
    path = plugin_onnx(tmp_path / "plugins.onnx")
    assert onnx_plugin_ops(path) == ["VitPruneTopKSelect"]
    assert [n.op_type for n in plugin_nodes.onnx_plugin_nodes(path)] == ["VitPruneTopKSelect"]
    _, exported = export_cache(TINY, "tome", rate=0.1, plugins=True)
    proto = onnx.load(str(exported.path), load_external_data=False)
    expected = [
        (n.name, n.op_type, next(a.s.decode() for a in n.attribute if a.name == "plugin_version"))
        for n in proto.graph.node
        if n.op_type.startswith("VitPrune")
    ]
    found = [(n.name, n.op_type, n.version) for n in plugin_nodes.onnx_plugin_nodes(exported.path)]
    assert found == expected and len(found) == 6
    assert plugin_nodes.onnx_plugin_nodes(small_onnx_path(tmp_path)) == []
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff\xff")
    with pytest.raises(trt_build.BuildError, match="is not a readable ONNX file"):
        plugin_nodes.onnx_plugin_nodes(tmp_path / "junk.onnx")


def small_onnx_path(folder: Path) -> Path:
    path = folder / "plain.onnx"
    node = helper.make_node("Relu", ["images"], ["logits"], name="relu")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def test_a_missing_creator_is_named_with_its_node_before_parsing(tmp_path):
    """TensorRT 10/11 (stand-in registry): a plugin node whose creator is not registered stops the build before
    the parser sees it, naming the node and the creator (name, version, namespace)."""
    calls = []
    path = plugin_onnx(tmp_path / "plugins.onnx")
    module = fake_tensorrt(calls, creators=())
    settings = builder_settings(
        load_profile("jetson-orin-nano"), "tensorrt", "10.3", DYNAMIC, fp16=False
    ).for_trt_build()
    with pytest.raises(trt_build.BuildError) as error:
        trt_build.build_serialized_engine(module, path, settings, library="/opt/libvitprune_plugins.so")
    message = str(error.value)
    assert "node 'topk0' needs the TensorRT plugin creator 'VitPruneTopKSelect' (version '1', namespace '')" in message
    assert "'/opt/libvitprune_plugins.so' does not register it" in message
    assert not any(name.startswith("parser.") for name, *_ in calls)  # refused before parsing
    with pytest.raises(trt_build.BuildError, match="no plugin library is loaded: pass --plugins"):
        trt_build.build_serialized_engine(module, path, settings)
    found = fake_tensorrt(calls := [], creators=("VitPruneTopKSelect",))
    assert trt_build.build_serialized_engine(found, path, settings).engine == b"ENGINE"


def test_plugin_graph_on_tensorrt_10_without_a_library_is_one_line(tmp_path, monkeypatch):
    import vitprune_export.tensorrt.env as trt_env

    path = plugin_onnx(tmp_path / "plugins.onnx")
    monkeypatch.setattr(trt_env, "default_plugin_library", lambda: None)
    monkeypatch.setattr(
        trt_env, "import_tensorrt", lambda prefer=None: trt_env.TensorRT(fake_tensorrt([]), "tensorrt", "10.3.0")
    )
    result = CliRunner().invoke(
        app, ["build", str(path), "--profile", "jetson-orin-nano", "-o", str(tmp_path / "x.engine")]
    )
    assert result.exit_code == 2
    assert "plugin nodes (VitPruneTopKSelect)" in result.output and "--plugins" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins.onnx"]


def test_tensorrt_for_rtx_is_refused_by_what_it_lacks():
    """TensorRT for RTX is recognised by name, a TensorRT whose network has no plugin layers by its API."""
    assert not plugin_nodes.has_plugin_layers(types.SimpleNamespace(__name__="tensorrt_rtx"))
    no_plugin_api = types.SimpleNamespace(__name__="tensorrt", INetworkDefinition=type("N", (), {}))
    assert not plugin_nodes.has_plugin_layers(no_plugin_api)
    with_plugins = types.SimpleNamespace(__name__="tensorrt", INetworkDefinition=type("N", (), {"add_plugin_v3": None}))
    assert plugin_nodes.has_plugin_layers(with_plugins)


@requires_tensorrt_rtx
def test_plugin_graph_on_tensorrt_rtx_is_one_line_and_exit_2_before_parsing(tmp_path):
    """The parser aborted the process (exit 134) on a plugin node with the library loaded; now vitprune refuses
    first — before the library is even looked at (this one does not exist) — with what to do instead."""
    import subprocess
    import sys

    path = plugin_onnx(tmp_path / "plugins.onnx")
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vitprune_export.cli import main; main()",
            "build",
            str(path),
            "--profile",
            "rtx-generic",
            "--plugins",
            str(tmp_path / "libvitprune_plugins.so"),
            "-o",
            str(tmp_path / "x.engine"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    # the hand-made graph has no pruning record: a note says so, then the one error line
    lines = [line for line in lines if not (line.startswith("note:") and "not written by vitprune" in line)]
    assert len(lines) == 1, lines
    assert "1 plugin node(s): VitPruneTopKSelect ×1, first 'topk0'" in lines[0]
    assert "TensorRT for RTX has no plugin layers" in lines[0]
    assert f"vitprune rewrite {path} --to standard -o {tmp_path / 'plugins_standard.onnx'}" in lines[0]
    assert "TensorRT 10/11" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins.onnx"]


# ---------------------------------------------------------------- the CLI without TensorRT


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed: the missing-TensorRT path cannot be exercised")
def test_build_without_tensorrt_exits_2_and_leaves_nothing(tiny_onnx, tmp_path):
    engine = tmp_path / "out" / "tiny.engine"
    cache = tmp_path / "t.cache"
    result = CliRunner().invoke(
        app, ["build", str(tiny_onnx), "--profile", "jetson-orin-nano", "-o", str(engine), "--timing-cache", str(cache)]
    )
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
        assert (settings["flavour"], settings["tensorrt_version"], settings["builder_flags"]) == (
            "tensorrt",
            "10.3",
            ["FP16"],
        )


def test_dry_run_for_jetpack6_lists_the_fp32_layers(tiny_onnx, monkeypatch):
    """Where the profile's TensorRT (10.3) is not installed, the dry run shows its settings: FP16 flag plus the
    precision constraints on the fragile layers of this ONNX — what the Jetson bundle will build with."""
    import vitprune_export.tensorrt.env as trt_env
    from vitprune_export.errors import MissingDependencyError

    def missing(prefer=None):
        raise MissingDependencyError("TensorRT is not available")

    monkeypatch.setattr(trt_env, "import_tensorrt", missing)
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", "jetson-orin-nano", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)
    assert (settings["flavour"], settings["tensorrt_version"]) == ("tensorrt", "10.3")
    assert settings["builder_flags"] == ["FP16", "PREFER_PRECISION_CONSTRAINTS"]
    proto = onnx.load(str(tiny_onnx))
    layer_norms = [n.name for n in proto.graph.node if n.op_type == "LayerNormalization"]
    assert len(layer_norms) == 13 and set(layer_norms) <= set(settings["fp32_layers"])


def test_build_with_a_cpu_profile_says_there_is_no_engine(tiny_onnx):
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", "cpu"])
    assert result.exit_code == 2
    assert "uses backend 'ort-cpu': there is no engine to build" in result.output


# ---------------------------------------------------------------- real builds (TensorRT + GPU)


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not tensorrt_available(), reason="needs TensorRT Python bindings")
def test_real_build_writes_engine_json_and_timing_cache(tiny_onnx, tmp_path):
    from vitprune_export.tensorrt.build import build_engine, gpu_name

    if gpu_name() is None:
        pytest.skip("needs an NVIDIA GPU")
    from vitprune_export.tensorrt.env import import_tensorrt

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
        again = build_engine(
            tiny_onnx, profile, output=tmp_path / "again.engine", fp16=False, timing_cache=tmp_path / "t.cache"
        )
        assert again.size_bytes > 0
    assert result.settings.precision == "fp32"


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_tensorrt_rtx_builds_ahead_of_time_even_without_a_gpu(tiny_onnx, tmp_path):
    """TensorRT for RTX compiles ahead of time on the CPU; the engine's kernels are JIT-compiled on the GPU later."""
    from vitprune_export.tensorrt.build import build_engine

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
@requires_tensorrt_rtx
def test_real_parser_errors_are_reported_by_node(tmp_path):
    """parser_errors against the real parser API (build_serialized_engine refuses this graph before parsing)."""
    import tensorrt_rtx as trt

    path = plugin_onnx(tmp_path / "plugins.onnx")
    with pytest.raises(trt_build.BuildError, match="TensorRT for RTX has no plugin layers"):
        trt_build.build_serialized_engine(trt, path, {"strongly_typed": True, "workspace_bytes": 2**28})
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert not parser.parse_from_file(str(path))  # no plugin library loaded: an error, not an abort
    [line] = trt_build.parser_errors(parser)
    assert "(VitPruneTopKSelect)" in line and "--plugins" in line


def test_profile_with_unknown_key_fails_before_tensorrt(tiny_onnx, tmp_path):
    path = tmp_path / "odd.toml"
    path.write_text("[build]\nbackend = 'trt'\nworkspace = 4096\n")
    result = CliRunner().invoke(app, ["build", str(tiny_onnx), "--profile", str(path)])
    assert result.exit_code == 2
    assert "unknown key 'build.workspace' (did you mean 'workspace_mb'?)" in result.output
    with pytest.raises(VitPruneError):
        profile_from_dict({"build": {"workspace": 1}}, "odd")


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_a_plugin_library_that_does_not_load_is_one_line(tmp_path):
    """A file that is no plugin library (or a library without getCreators): TensorRT's registry returns no
    handle, and both loaders say so in one line instead of failing later in the parser."""
    import tensorrt_rtx

    from vitprune_export.tensorrt.env import TensorRT, load_plugin_library

    bad = tmp_path / "libvitprune_plugins.so"
    bad.write_bytes(b"not a shared library")
    with pytest.raises(
        VitPruneError, match="TensorRT could not load plugin library .*built for another TensorRT or CUDA"
    ):
        load_plugin_library(bad, TensorRT(tensorrt_rtx, "tensorrt_rtx", tensorrt_rtx.__version__))
    with pytest.raises(trt_build.BuildError, match="TensorRT could not load plugin library"):
        trt_build.load_plugins(tensorrt_rtx, str(bad))


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_every_fp32_node_is_found_among_the_parsed_layers(export_cache):
    """The layer ↔ ONNX node matching of the precision constraints, against a real ONNX parser's network
    (TensorRT for RTX's parser names and tags layers as TensorRT 10's does; it has no layer precisions
    itself): every node to keep fp32 owns at least one layer, the key norms' square, sum and root among them."""
    import tensorrt_rtx as trt

    from vitprune_export.export.fp16 import fp32_nodes

    _, exported = export_cache(TINY, "tome", rate=0.1)
    proto = onnx.load(str(exported.path))
    kept = fp32_nodes(proto)
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(exported.path))
    owners: dict[str, int] = {}
    for index in range(network.num_layers):
        for node in trt_build.onnx_nodes_of(network.get_layer(index)):
            owners[node] = owners.get(node, 0) + 1
    assert [name for name in kept if name not in owners] == []
    producer = {output: node for node in proto.graph.node for output in node.output}
    roots = [n for n in proto.graph.node if n.op_type == "Sqrt"]
    norms = [name for root in roots for name in (root.name, producer[root.input[0]].name)]
    norms += [producer[producer[root.input[0]].input[0]].name for root in roots]  # root, sum, square
    assert roots and all(name in kept and owners[name] >= 1 for name in norms)
