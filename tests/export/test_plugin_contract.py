"""The plugin contract is declared once (vitprune_export/export/ops/spec.py): the node the exporter writes, the
tables keyed by op, the C++ plugins' constants and the documentation agree with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vitprune_export.export.ops import decompose, reference
from vitprune_export.export.ops.spec import DOMAIN, OPS, PLUGIN_ATTRIBUTES, PLUGIN_OF_METHOD
from vitprune_export.pruning.methods import list_methods
from vitprune_export.resources import data_path, plugin_sources_dir

ROOT = Path(__file__).resolve().parents[2]
SPECS = list(OPS.values())


def plugin_folder(step: str) -> str:
    """``tome_merge`` → ``tomeMerge``: the folder of an op under plugins/."""
    return re.sub(r"_(\w)", lambda match: match.group(1).upper(), step)


def cpp_constants(spec) -> dict:
    """The op's constants as its plugin header declares them once: ``kRoles`` (inputs) and ``kOp`` (name,
    version, count field, tau, outputs, what the count means, the launcher's workspace function)."""
    folder = plugin_folder(spec.step)
    header = plugin_sources_dir() / folder / f"{folder}Plugin.h"
    text = header.read_text()
    op = re.search(r'kOp\{\s*"(\w+)", "(\w+)", "(\w+)", (true|false), (\d), CountMeaning::(\w+), &(\w+)\}', text)
    roles = re.search(r"kRoles\[\] = \{(.*)\};", text)
    assert op and roles, f"{header.name} declares no kOp or kRoles"
    return {
        "name": op.group(1),
        "version": op.group(2),
        "count": op.group(3),
        "tau": op.group(4) == "true",
        "outputs": int(op.group(5)),
        "count_means": op.group(6),
        "workspace": op.group(7),
        "inputs": tuple(re.findall(r'\{"(\w+)", [23]\}', roles.group(1))),
    }


def test_every_op_has_a_plugin_folder_and_every_plugin_folder_an_op():
    folders = {p.name for p in plugin_sources_dir().iterdir() if p.is_dir() and p.name not in ("common",)}
    folders = {name for name in folders if not name.startswith(("build", "."))}
    assert folders == {plugin_folder(spec.step) for spec in SPECS}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_cpp_constants_match_the_spec(spec):
    constants = cpp_constants(spec)
    assert (constants["name"], constants["version"]) == (spec.name, spec.version)
    # the plugin checks its inputs by these names and ranks (plugins/common/vitprunePluginShapes.h)
    assert (constants["inputs"], constants["outputs"]) == (spec.inputs, len(spec.outputs))
    # the creator declares num_prefix and the count as INT32, tau as FLOAT32 (plugins/common/vitprunePluginBase.h)
    declared = {"num_prefix": int, constants["count"]: int, **({"tau": float} if constants["tau"] else {})}
    assert declared == spec.attributes
    # keep → P + keep tokens out; merges → N − merges (plugins/common/vitprunePluginBase.cpp, getOutputShapes)
    assert constants["count_means"] == {"keep": "kKeptPatches", "merges": "kMergedPairs"}[constants["count"]]
    kernel_header = (
        plugin_sources_dir() / plugin_folder(spec.step) / f"{plugin_folder(spec.step)}Kernel.h"
    ).read_text()
    assert f"size_t {constants['workspace']}(int batch, int tokens, int numPrefix);" in kernel_header


def test_every_op_is_listed_once_among_the_creators():
    """getCreators hands out one creator per entry of AllPlugins, counted from that list (no count by hand)."""
    text = (plugin_sources_dir() / "common" / "vitprunePlugins.cpp").read_text()
    listed = re.search(r"using AllPlugins = PluginList<([\w, ]+)>;", text)
    assert listed, "vitprunePlugins.cpp has no AllPlugins list"
    ops = [name.strip() for name in listed.group(1).split(",")]
    headers = {plugin_folder(spec.step): plugin_sources_dir() / plugin_folder(spec.step) for spec in SPECS}
    declared = sorted(
        re.search(r"struct (\w+Op)\b", (folder / f"{name}Plugin.h").read_text()).group(1)
        for name, folder in headers.items()
    )
    assert sorted(ops) == declared and len(set(ops)) == len(ops)
    assert "nbCreators = " not in text and "sizeof...(Ops)" in text


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_the_exported_node_is_the_spec(spec):
    from vitprune_export.export.ops import onnx_functions

    function = getattr(onnx_functions, spec.step).to_function_proto()
    (node,) = function.node
    assert (node.op_type, node.domain) == (spec.name, DOMAIN)
    assert tuple(node.input) == spec.inputs and tuple(node.output) == spec.outputs
    attributes = {a.name: a for a in node.attribute}
    assert set(attributes) == set(spec.all_attributes) and set(PLUGIN_ATTRIBUTES) <= set(attributes)
    assert attributes["plugin_version"].s.decode() == spec.version
    assert attributes["plugin_namespace"].s.decode() == spec.namespace
    assert list(function.attribute) == list(spec.attributes)


def test_every_table_keyed_by_op_covers_the_spec():
    from vitprune_export.export.ops import custom  # noqa: F401  (registers torch.ops.vitprune.*)

    assert set(reference.REFERENCES) == set(decompose.DECOMPOSITIONS) == set(OPS)
    for spec in SPECS:
        assert hasattr(torch.ops.vitprune, spec.step)
        assert spec.method in list_methods() and PLUGIN_OF_METHOD[spec.method] == spec.name


def test_docs_and_plugin_readme_list_every_op_with_its_version_and_attributes():
    plugins_md = (data_path("plugins") / "README.md").read_text()
    docs = ROOT / "docs" / "plugins.md"
    rows = {
        line.split("|")[1].strip(" `"): line for line in docs.read_text().splitlines() if line.startswith("| `VitPrune")
    }
    for spec in SPECS:
        cells = [cell.strip() for cell in rows[spec.name].split("|")]
        assert cells[2] == spec.version, rows[spec.name]
        assert set(re.findall(r"`(\w+)`", cells[-2])) == set(spec.attributes), rows[spec.name]
        assert all(f"`{name}`" in cells[5] for name in spec.inputs + spec.outputs), rows[spec.name]
        readme_row = next(line for line in plugins_md.splitlines() if f"`{spec.name}`" in line)
        assert f"| {spec.version} |" in readme_row
        op_readme = (plugin_sources_dir() / plugin_folder(spec.step) / "README.md").read_text()
        assert f'| `plugin_version` | string | `"{spec.version}"`' in op_readme


# ---------------------------------------------------------------- the wrappers' types, against TensorRT's headers

TENSORRT_ROOT = os.environ.get("TENSORRT_ROOT")
COMPILER = shutil.which("g++")


def _cuda_include() -> Path | None:
    """The CUDA toolkit's include folder (cuda_runtime.h): beside nvcc, $CUDA_HOME, or /usr/local/cuda."""
    from vitprune_export.export.ops.plugin_library import find_nvcc

    nvcc = find_nvcc()
    candidates = [Path(nvcc).resolve().parent.parent / "include"] if nvcc else []
    candidates += [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include", Path("/usr/local/cuda/include")]
    return next((folder for folder in candidates if (folder / "cuda_runtime.h").is_file()), None)


@pytest.mark.skipif(
    not (TENSORRT_ROOT and (Path(TENSORRT_ROOT) / "include" / "NvInferRuntime.h").is_file())
    or COMPILER is None
    or _cuda_include() is None,
    reason="needs TensorRT headers (TENSORRT_ROOT with include/NvInferRuntime.h), g++ and the CUDA headers",
)
def test_side_inputs_are_fp32_whatever_the_tokens_type(tmp_path):
    """The plugins, compiled from their sources with the kernels' C ABI stubbed (tests/export/plugin_types_check.cpp):
    tokens fp32 or fp16, scores/keys/sizes fp32 only (fp16 tokens must not round the scores before ranking), the
    kept tokens in the tokens' type and the sizes fp32; enqueue hands the kernels both types; three creators."""
    binary = tmp_path / "plugin_types_check"
    sources = [Path(__file__).with_name("plugin_types_check.cpp")]
    sources += [plugin_sources_dir() / "common" / name for name in ("vitprunePluginBase.cpp", "vitprunePlugins.cpp")]
    sources += sorted(plugin_sources_dir().glob("*/*Plugin.cpp"))
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Werror"]
    includes = ["-isystem", f"{TENSORRT_ROOT}/include", "-isystem", str(_cuda_include()), f"-I{plugin_sources_dir()}"]
    done = subprocess.run(
        [COMPILER, *flags, *includes, *map(str, sources), "-o", str(binary)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.splitlines()
    for spec in SPECS:
        mine = [line.split(" ", 1)[1] for line in lines if line.startswith(spec.name + " ")]
        assert mine[:4] == [
            "formats float float 1",
            "formats float half 0",
            "formats half float 1",
            "formats half half 0",
        ]
        assert mine[4] == "outputs 0 " + " ".join(["half", *["float"] * (len(spec.outputs) - 1)])
        assert mine[5] == "enqueue 0 1 0"  # VITPRUNE_FLOAT16 tokens, VITPRUNE_FLOAT32 side inputs
    assert lines[-1] == f"creators {len(SPECS)}"
