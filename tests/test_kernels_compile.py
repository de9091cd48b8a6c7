"""Every CUDA kernel compiles for Jetson Orin (sm_87), Ada (sm_89) and Hopper (sm_90) — on any
machine with nvcc, GPU or not — and the CLI builds the kernels-only library through CMake."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from typer.testing import CliRunner

from vitprune_export.ops.plugin_library import find_nvcc, plugin_sources

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
        command = [str(NVCC), "-c", "-std=c++17", f"-arch=sm_{arch}",
                   "-I", str(plugin_sources()), *map(str, KERNELS)]
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

    run = CliRunner().invoke(app, ["plugins", "build", "--kernels-only", "--arch", "87", "--build-dir", str(tmp_path), "--json"])
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
