"""Every CUDA kernel compiles for Jetson Orin (sm_87), Ada (sm_89) and Hopper (sm_90) — on any
machine with nvcc, GPU or not — and the CLI builds the kernels-only library through CMake. With
TensorRT's public headers (``TENSORRT_ROOT``), the whole IPluginV3 library compiles warning-free and its
creators register with a real TensorRT plugin registry."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitprune_export.export.ops.plugin_library import find_nvcc, plugin_sources

ARCHES = ("87", "89", "90")
KERNELS = sorted(plugin_sources().glob("*/*Kernel.cu"))
NVCC = find_nvcc()
requires_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed")


def test_every_op_has_a_kernel():
    assert {path.parent.name for path in KERNELS} == {"topkSelect", "vpa", "tomeMerge"}


@requires_nvcc
def test_every_kernel_compiles_for_orin_ada_hopper(tmp_path):
    def compile_for(arch: str):
        folder = tmp_path / f"sm_{arch}"
        folder.mkdir()
        command = [str(NVCC), "-c", "-std=c++17", f"-arch=sm_{arch}", "-I", str(plugin_sources()), *map(str, KERNELS)]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        return arch, done.returncode, done.stderr

    with ThreadPoolExecutor(max_workers=len(ARCHES)) as pool:
        results = list(pool.map(compile_for, ARCHES))
    failures = [f"sm_{arch}: {stderr.strip()[:2000]}" for arch, code, stderr in results if code != 0]
    assert not failures, "\n".join(failures)
    for arch in ARCHES:
        objects = sorted(path.name for path in (tmp_path / f"sm_{arch}").glob("*.o"))
        assert objects == sorted(path.with_suffix(".o").name for path in KERNELS)


@requires_nvcc
def test_cli_builds_the_kernels_only_library(tmp_path):
    from vitprune_export.cli import app

    run = CliRunner().invoke(
        app, ["plugins", "build", "--kernels-only", "--arch", "87", "--build-dir", str(tmp_path), "--json"]
    )
    assert run.exit_code == 0, run.output
    library = tmp_path / "libvitprune_kernels.so"
    assert library.is_file()
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True).stdout
    for name in ("vitpruneTopKSelect", "vitpruneVPA", "vitpruneToMeMerge", "vitpruneVPAWorkspaceSize"):
        assert f" T {name}\n" in symbols


def test_cli_says_what_is_missing(tmp_path):
    from vitprune_export.cli import app

    run = CliRunner().invoke(app, ["plugins", "build", "--tensorrt-root", str(tmp_path / "no-tensorrt")])
    assert run.exit_code == 2
    assert "NvInferRuntime.h" in run.output and "--kernels-only" in run.output
    bad = CliRunner().invoke(app, ["plugins", "build", "--kernels-only", "--arch", "sm90"])
    assert bad.exit_code == 2 and "--arch takes SM numbers" in bad.output


# ---------------------------------------------------------------- the IPluginV3 library against real TensorRT headers

TENSORRT_ROOT = os.environ.get("TENSORRT_ROOT")
requires_tensorrt_headers = pytest.mark.skipif(
    not (TENSORRT_ROOT and (Path(TENSORRT_ROOT) / "include" / "NvInferRuntime.h").is_file()) or NVCC is None,
    reason="needs TensorRT headers: set TENSORRT_ROOT to a folder with include/NvInferRuntime.h (e.g. NVIDIA/TensorRT "
    "at tag v10.3.0 or v11.1; docs/plugins.md) and nvcc",
)


@pytest.fixture(scope="module")
def plugin_library(tmp_path_factory):
    from vitprune_export.export.ops.plugin_library import build_plugin_library

    build = build_plugin_library(tmp_path_factory.mktemp("plugins"), ARCHES, tensorrt_root=TENSORRT_ROOT)
    return build


@requires_tensorrt_headers
def test_plugin_library_compiles_against_tensorrt_headers_without_warnings(plugin_library):
    """libvitprune_plugins.so for sm_87/89/90 with -Wall -Wextra -Wpedantic …; TensorRT's headers are -isystem."""
    log = (plugin_library.build_dir / "vitprune-build.log").read_text()
    assert [line for line in log.splitlines() if "warning" in line.lower()] == []
    symbols = subprocess.run(
        ["nm", "-D", "--defined-only", str(plugin_library.library)], capture_output=True, text=True
    ).stdout
    for name in ("getCreators", "setLoggerFinder"):
        assert f" T {name}\n" in symbols
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(plugin_library.library)], capture_output=True, text=True
    ).stdout
    assert "nvinfer" not in undefined.lower()  # TensorRT reaches the plugins through vtables only


REGISTRY_CHECK = """
import sys, tensorrt_rtx as trt
from vitprune_export.export.ops.spec import OPS
registry = trt.get_plugin_registry()
assert registry.load_library(sys.argv[1]) is not None, "load_library failed"
for name, spec in OPS.items():
    creator = registry.get_creator(name, spec.version, spec.namespace)
    assert creator is not None, name
    fields = sorted(field.name for field in creator.field_names)
    print(name, creator.plugin_version, repr(creator.plugin_namespace), ",".join(fields))
"""


@requires_tensorrt_headers
def test_the_creators_register_with_a_real_plugin_registry(plugin_library):
    """The library built against the public headers loads into TensorRT for RTX's registry (the same IPluginV3
    ABI), which finds the three creators by name, their versions (ToMe's 2, the others 1) and namespace "" and
    lists their fields."""
    pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX (pip install -e '.[dev]')")
    run = subprocess.run(
        [sys.executable, "-c", REGISTRY_CHECK, str(plugin_library.library)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert lines["VitPruneTopKSelect"] == "1 '' keep,num_prefix"
    assert lines["VitPruneVPA"] == "1 '' keep,num_prefix,tau"
    assert lines["VitPruneToMeMerge"] == "2 '' merges,num_prefix"


@requires_tensorrt_headers
def test_a_loaded_plugin_library_no_longer_aborts_tensorrt_rtx(plugin_library, export_cache, tmp_path):
    """With the real library loaded, TensorRT for RTX's parser aborts the process on a plugin node (exit 134);
    `vitprune build` and the bundle's portable.trt_build refuse the graph before parsing: one line, exit 2."""
    pytest.importorskip("tensorrt_rtx", reason="needs TensorRT for RTX (pip install -e '.[dev]')")
    _, exported = export_cache("vitprune_tiny_patch4_32", "topk", rate=0.1, plugins=True)
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "from vitprune_export.cli import main; main()",
            "build",
            str(exported.path),
            "--profile",
            "rtx-generic",
            "--plugins",
            str(plugin_library.library),
            "-o",
            str(tmp_path / "x.engine"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 2, build.stdout + build.stderr
    assert "TensorRT for RTX has no plugin layers" in build.stderr and "--to standard" in build.stderr
    settings = tmp_path / "settings.json"
    settings.write_text('{"flavour": "tensorrt_rtx", "strongly_typed": true, "workspace_bytes": 268435456}')
    script = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitprune_export.portable.trt_build",
            "--onnx",
            str(exported.path),
            "--settings",
            str(settings),
            "--plugins",
            str(plugin_library.library),
            "--output",
            str(tmp_path / "y.engine"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert script.returncode == 2 and script.stderr.startswith("error: ") and "no plugin layers" in script.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
