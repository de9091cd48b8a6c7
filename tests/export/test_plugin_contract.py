"""The plugin contract is declared once (vitprune_export/export/ops/spec.py): the node the exporter writes, the
tables keyed by op, the C++ plugins' constants and the documentation agree with it."""

from __future__ import annotations

import re
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
    folder = plugin_folder(spec.step)
    header = plugin_sources_dir() / folder / f"{folder}Plugin.h"
    text = header.read_text()

    def grab(pattern: str) -> str:
        match = re.search(pattern, text)
        assert match, f"{header.name} has no {pattern}"
        return match.group(1)

    return {
        "name": grab(r'kName = "(\w+)"'),
        "version": grab(r'kVersion = "(\w+)"'),
        "count": grab(r'kCountField = "(\w+)"'),
        "tau": grab(r"kHasTau = (true|false)") == "true",
        "inputs": tuple(re.findall(r'\{"(\w+)", [23]\}', grab(r"kRoles\[\d+\] = \{(.*)\};"))),
        "outputs": int(grab(r"getNbOutputs\(\) const noexcept override \{ return (\d+); \}")),
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
