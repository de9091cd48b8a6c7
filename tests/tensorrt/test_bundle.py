"""`vitprune bundle`: the Jetson folder holds every file, its scripts parse, its CMake
configures the kernels-only target, its measuring script writes a valid results JSON, and a
failed bundle leaves nothing behind."""

import json
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.export.onnx import read_metadata
from vitprune_export.measure.results import validate_result
from vitprune_export.portable import trt_measure
from vitprune_export.tensorrt.bundle import bundle, default_plugins_dir
from vitprune_export.tensorrt.profiles import load_profile

TINY = "vitprune_tiny_patch4_32"
EXPECTED_FILES = {
    "README.md",
    "build.sh",
    "profile.sh",
    "build_settings.json",
    "metadata.json",
    "profile.toml",
    "bundle.json",
}
#: the portable package the scripts run, shipped as it is
PORTABLE = (
    "__init__.py",
    "cuda.py",
    "engine_description.py",
    "environment.py",
    "files.py",
    "interleave.py",
    "plan.py",
    "plugin_nodes.py",
    "results.py",
    "stats.py",
    "trt_build.py",
    "trt_curves.py",
    "trt_measure.py",
)


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    _, result = export_cache(TINY, "topk", rate=0.1)
    return result.path


@pytest.fixture(scope="module")
def jetson_bundle(tiny_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles") / "orin"
    result = CliRunner().invoke(app, ["bundle", str(tiny_onnx), "--profile", "jetson-orin-nano", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    return folder


def test_bundle_contains_every_file(jetson_bundle, tiny_onnx):
    names = {p.name for p in jetson_bundle.iterdir()}
    assert EXPECTED_FILES | {tiny_onnx.name, "plugins", "portable"} <= names
    assert sorted(p.name for p in (jetson_bundle / "portable").iterdir()) == sorted(PORTABLE)
    for name in PORTABLE:  # verbatim
        assert (jetson_bundle / "portable" / name).read_bytes() == (
            Path(trt_measure.__file__).parent / name
        ).read_bytes()
    manifest = json.loads((jetson_bundle / "bundle.json").read_text())
    listed = set(manifest["files"])
    on_disk = {str(p.relative_to(jetson_bundle)) for p in jetson_bundle.rglob("*") if p.is_file()}
    assert listed == on_disk
    assert (jetson_bundle / tiny_onnx.name).read_bytes() == tiny_onnx.read_bytes()
    assert json.loads((jetson_bundle / "metadata.json").read_text()) == read_metadata(tiny_onnx)


def test_scripts_are_executable_and_pass_bash_n(jetson_bundle):
    for script in ("build.sh", "profile.sh"):
        path = jetson_bundle / script
        assert path.stat().st_mode & 0o111
        check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    for script in PORTABLE:
        py_compile.compile(str(jetson_bundle / "portable" / script), doraise=True)


def test_build_settings_are_for_jetpack6_tensorrt_10_3(jetson_bundle):
    settings = json.loads((jetson_bundle / "build_settings.json").read_text())
    assert settings["flavour"] == "tensorrt" and not settings["strongly_typed"]
    assert settings["builder_flags"] == ["FP16", "PREFER_PRECISION_CONSTRAINTS"]
    kept = settings["fp32_layers"]  # LayerNorm, Softmax and the token scores stay fp32 under the FP16 flag
    assert any("layer_norm" in name for name in kept) and any("Softmax" in name for name in kept)
    assert any(name.startswith("node_sort") or "topk" in name.lower() for name in kept)
    assert settings["device"] == "jetson-orin-nano" and settings["profile"]["name"] == "jetson-orin-nano"
    assert settings["workspace_bytes"] == 1024 * 2**20
    assert settings["shape_profile"] == {"images": [[1, 3, 32, 32], [1, 3, 32, 32], [8, 3, 32, 32]]}
    assert settings["timing_cache"] == "timing.cache"
    build_sh = (jetson_bundle / "build.sh").read_text()
    assert "DEFAULT_CUDA_ARCH=87\n" in build_sh and 'CUDA_ARCH="${CUDA_ARCH:-$DEFAULT_CUDA_ARCH}"' in build_sh
    for flag in (
        "--fp16",
        "--minShapes=images:1x3x32x32",
        "--maxShapes=images:8x3x32x32",
        "--memPoolSize=workspace:1024M",
        "--builderOptimizationLevel=3",
        "--timingCacheFile=timing.cache",
        "--staticPlugins=",
        "--precisionConstraints=prefer",
        f"--layerPrecisions={kept[0]}:fp32,",
    ):
        assert flag in build_sh


def test_profile_sh_follows_the_protocol_and_result_naming(jetson_bundle):
    text = (jetson_bundle / "profile.sh").read_text()
    assert "DEFAULT_WARMUP=20\n" in text and "DEFAULT_ITERATIONS=200\n" in text
    assert "DEVICE=jetson-orin-nano\n" in text and "RESULT_PREFIX=vitprune_tiny_patch4_32_topk_r0.1_trt_b\n" in text
    assert "RESULT_SUFFIX=_fp16\n" in text
    assert 'OUTPUT="results/$DEVICE/$RESULT_PREFIX${BATCH}$RESULT_SUFFIX.json"' in text


def test_profile_copy_keeps_the_device_name(jetson_bundle):
    copy = load_profile(jetson_bundle / "profile.toml")
    assert copy.name == "jetson-orin-nano"
    assert copy.build == load_profile("jetson-orin-nano").build


def test_readme_gives_the_exact_steps(jetson_bundle):
    readme = (jetson_bundle / "README.md").read_text()
    for fragment in (
        "sudo nvpmodel",
        "sudo jetson_clocks",
        "./build.sh",
        "./build.sh --trtexec",
        "./profile.sh",
        "into `results/jetson-orin-nano/` of the folder where you run vitprune",
        "vitprune compare results",
        "--warm-up 20 --iterations 200",
        "59 54 49 45 41 37",
    ):
        assert fragment in readme


def test_plugin_sources_are_copied_verbatim(jetson_bundle):
    source = default_plugins_dir()
    if not (source / "CMakeLists.txt").is_file():
        pytest.skip("plugins/CMakeLists.txt is not in this checkout yet")
    for path in source.rglob("*"):
        if (
            path.is_file()
            and not any(part.startswith("build") for part in path.relative_to(source).parts)
            and path.suffix != ".so"
        ):
            copied = jetson_bundle / "plugins" / path.relative_to(source)
            assert copied.read_bytes() == path.read_bytes(), copied


@pytest.mark.skipif(shutil.which("cmake") is None, reason="needs cmake")
def test_bundled_cmake_configures_the_kernels_only_target(jetson_bundle, tmp_path):
    if not (jetson_bundle / "plugins" / "CMakeLists.txt").is_file():
        pytest.skip("plugins/CMakeLists.txt is not in this checkout yet, so the bundle has none")
    if shutil.which("nvcc") is None:
        pytest.skip("needs nvcc (the CUDA toolkit) for CMake's CUDA language")
    configure = subprocess.run(
        [
            "cmake",
            "-S",
            str(jetson_bundle / "plugins"),
            "-B",
            str(tmp_path / "build"),
            "-DVITPRUNE_KERNELS_ONLY=ON",
            "-DCMAKE_CUDA_ARCHITECTURES=87",
        ],
        capture_output=True,
        text=True,
    )
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-2000:]
    assert (tmp_path / "build" / "Makefile").is_file() or (tmp_path / "build" / "build.ninja").is_file()


def test_ignored_plugin_build_outputs_stay_out(tiny_onnx, tmp_path):
    plugins = tmp_path / "plugins"
    (plugins / "op").mkdir(parents=True)
    (plugins / "CMakeLists.txt").write_text("project(x)\n")
    (plugins / "op" / "opKernel.cu").write_text("// kernel\n")
    (plugins / "build").mkdir()
    (plugins / "build" / "libvitprune_plugins.so").write_bytes(b"\x7fELF")
    result = bundle(tiny_onnx, "jetson-orin-nano", tmp_path / "b", plugins_dir=plugins)
    assert {f for f in result.files if f.startswith("plugins/")} == {"plugins/CMakeLists.txt", "plugins/op/opKernel.cu"}


def test_existing_folder_needs_force_and_force_replaces_it(tiny_onnx, tmp_path):
    target = tmp_path / "b"
    bundle(tiny_onnx, "jetson-orin-nano", target)
    (target / "old.txt").write_text("old")
    with pytest.raises(VitPruneError, match="already exists; choose another -o or pass --force"):
        bundle(tiny_onnx, "jetson-orin-nano", target)
    bundle(tiny_onnx, "jetson-orin-nano", target, force=True)
    assert not (target / "old.txt").exists() and (target / "build.sh").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging or aside folders left


def test_a_failed_bundle_leaves_nothing(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("VitPruneTopKSelect", ["images"], ["logits"], domain="vitprune", keep=4)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
    )
    model = tmp_path / "plugins.onnx"
    onnx.save_model(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("vitprune", 1)]),
        str(model),
    )
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    with pytest.raises(VitPruneError, match=r"plugin nodes \(VitPruneTopKSelect\) but .* has no CMakeLists.txt"):
        bundle(model, "jetson-orin-nano", tmp_path / "out", plugins_dir=empty)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no-plugins", "plugins.onnx"]


def test_cli_bundle_refuses_a_cpu_profile_and_an_existing_folder(tiny_onnx, jetson_bundle, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bundle", str(tiny_onnx), "--profile", "cpu", "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "a bundle is for TensorRT devices" in result.output
    result = runner.invoke(app, ["bundle", str(tiny_onnx), "-o", str(jetson_bundle)])
    assert result.exit_code == 2 and "already exists" in result.output


def test_strongly_typed_bundle_ships_an_fp16_onnx(tiny_onnx, tmp_path):
    from vitprune_export.export.fp16 import mixed_type_nodes
    from vitprune_export.tensorrt.settings import onnx_float_precision

    result = bundle(tiny_onnx, "rtx-generic", tmp_path / "rtx")
    assert result.settings["strongly_typed"] and result.settings["convert_onnx_to_fp16"]
    converted = tmp_path / "rtx" / f"{tiny_onnx.stem}_fp16.onnx"
    assert onnx_float_precision(converted) == "fp16"
    import onnx

    assert mixed_type_nodes(onnx.load(str(converted))) == []
    assert "--stronglyTyped" in (tmp_path / "rtx" / "build.sh").read_text()
    assert json.loads((tmp_path / "rtx" / "build_settings.json").read_text())["timing_cache"] is None


# ---------------------------------------------------------------- the bundled measuring script (no GPU needed)


def test_measure_script_result_passes_the_results_schema(jetson_bundle):
    metadata = json.loads((jetson_bundle / "metadata.json").read_text())
    samples = [1.0 + 0.01 * i for i in range(100)]
    result = trt_measure.latency_result(
        metadata,
        samples,
        batch=2,
        warmup=20,
        device="jetson-orin-nano",
        precision="fp16",
        env={"gpu": {}},
        source="x.engine",
    )
    validate_result(result)
    assert result["keep_counts"] == [59, 54, 49, 45, 41, 37] and result["rate"] == 0.1
    assert result["latency_ms"]["median"] == pytest.approx(1.495)
    assert result["images_per_s"] == pytest.approx(2 * 1000 / 1.495)
    from vitprune_export.measure.profile import latency_stats

    assert trt_measure.latency_stats(samples) == latency_stats(samples)  # same statistics as 'vitprune profile'


def test_measure_script_refuses_fewer_than_100_iterations(jetson_bundle):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "portable.trt_measure",
            "--engine",
            "x",
            "--metadata",
            "metadata.json",
            "--device",
            "d",
            "--precision",
            "fp16",
            "--output",
            "r.json",
            "--iterations",
            "50",
        ],
        capture_output=True,
        text=True,
        cwd=jetson_bundle,
    )
    assert done.returncode == 2 and "--iterations ≥ 100" in done.stderr
    assert not (jetson_bundle / "r.json").exists()


def test_build_script_standalone_without_tensorrt_exits_2(jetson_bundle, tmp_path):
    """The Jetson bundle asks for `tensorrt` (10.3); where only TensorRT for RTX is installed, that is missing too."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT (tensorrt) is installed")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "portable.trt_build",
            "--onnx",
            "x.onnx",
            "--settings",
            "build_settings.json",
            "--output",
            str(tmp_path / "x.engine"),
        ],
        capture_output=True,
        text=True,
        cwd=jetson_bundle,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: TensorRT Python bindings are not importable")
    assert not (tmp_path / "x.engine").exists()


def test_a_plugin_graph_for_tensorrt_rtx_is_refused_at_bundle_time(tmp_path, export_cache):
    _, exported = export_cache(TINY, "topk", rate=0.1, plugins=True)
    result = CliRunner().invoke(
        app, ["bundle", str(exported.path), "--profile", "rtx-generic", "-o", str(tmp_path / "b")]
    )
    assert result.exit_code == 2
    assert "TensorRT for RTX, which has no plugin layers" in result.output and "--to standard" in result.output
    assert not (tmp_path / "b").exists()
