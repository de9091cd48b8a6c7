"""`export --plugin-nodes` → ONNX Runtime (custom ops) and `rewrite --to standard|plugins` on real ViTs.

For topk-vpa, tome and topk on ViT-S/16 and DeiT-T (random weights): the plugin graph has one
plugin node per pruning layer whose attributes are the schedule's, ONNX Runtime with the custom
ops matches PyTorch ≤ 1e-4, the standard rewrite matches too and holds no plugin node, and
neither form holds ops TensorRT 10.3 rejects.
"""

from __future__ import annotations

import onnx
import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.export.onnx import parity, read_metadata
from vitprune_export.export.ops import DOMAIN, OPS, PLUGIN_OF_METHOD
from vitprune_export.export.rewrite import forbidden_ops, plugin_attributes, plugin_nodes, rewrite_onnx
from vitprune_export.pruning.patch import pruning_info

MODELS = ["vit_small_patch16_224", "deit_tiny_patch16_224"]
PLUGIN_OF = PLUGIN_OF_METHOD
TOLERANCE = 1e-4
SEED = 0  # parity images


def _expected_attributes(model, method: str) -> list[dict]:
    info = pruning_info(model)
    schedule, knobs = info["schedule"], info["method"].knob_values()
    expected = []
    for tokens_in, removed in zip(schedule.tokens_in, schedule.removed):
        if removed == 0:
            continue
        attributes = {**OPS[PLUGIN_OF[method]].plugin_attributes, "num_prefix": schedule.num_prefix}
        if method == "tome":
            attributes["merges"] = removed
        else:
            attributes["keep"] = tokens_in - removed - schedule.num_prefix
        if method == "topk-vpa":
            attributes["tau"] = pytest.approx(knobs["tau"], rel=1e-6)
        expected.append(attributes)
    return expected


@pytest.fixture(scope="module")
def standard_forms(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standard")
    cache = {}

    def get(path, key):
        if key not in cache:
            cache[key] = rewrite_onnx(path, folder / f"{key}.onnx", "standard")
        return cache[key]

    return get


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", list(PLUGIN_OF))
def test_plugin_export_and_standard_rewrite_match_pytorch(export_cache, standard_forms, model_name, method):
    model, result = export_cache(model_name, method, dynamic_batch=False, plugins=True)
    assert parity(model, result.path, batch=1, seed=SEED, custom_ops=True) <= TOLERANCE  # ORT custom ops vs PyTorch

    proto = onnx.load(str(result.path))
    nodes = plugin_nodes(proto)
    assert {node.op_type for node in nodes} == {PLUGIN_OF[method]}
    assert all(node.domain == DOMAIN for node in nodes)
    assert [plugin_attributes(node) for node in nodes] == _expected_attributes(model, method)
    assert forbidden_ops(proto) == []
    assert proto.ir_version <= 10
    assert read_metadata(result.path)["plugins"] is True

    standard = standard_forms(result.path, f"{model_name}-{method}")
    standard_proto = onnx.load(str(standard.path))
    assert standard.plugin_nodes_in == len(nodes) and plugin_nodes(standard_proto) == []
    assert all(opset.domain != DOMAIN for opset in standard_proto.opset_import)
    assert forbidden_ops(standard_proto) == []
    assert parity(model, standard.path, batch=1, seed=SEED) <= TOLERANCE
    assert read_metadata(standard.path)["rewrite"] == "standard"


def test_plugins_rewrite_is_idempotent_and_keeps_attributes(export_cache, tmp_path):
    _, result = export_cache("deit_tiny_patch16_224", "topk-vpa", dynamic_batch=False, plugins=True)
    before = [(node.name, plugin_attributes(node)) for node in plugin_nodes(onnx.load(str(result.path)))]
    again = rewrite_onnx(result.path, tmp_path / "again.onnx", "plugins")
    after = [(node.name, plugin_attributes(node)) for node in plugin_nodes(onnx.load(str(again.path)))]
    assert after == before and again.plugin_nodes_out == len(before)


def test_custom_nodes_without_plugin_attributes_are_completed(export_cache, tmp_path):
    """A custom node carrying only the op's attributes (another exporter) becomes a full plugin node."""
    _, result = export_cache("deit_tiny_patch16_224", "tome", dynamic_batch=False, plugins=True)
    proto = onnx.load(str(result.path))
    for node in plugin_nodes(proto):
        kept = [a for a in node.attribute if a.name not in ("plugin_version", "plugin_namespace")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.domain = "custom.other"
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    completed = onnx.load(str(rewrite_onnx(bare, tmp_path / "completed.onnx", "plugins").path))
    for node in plugin_nodes(completed):
        attributes = plugin_attributes(node)
        assert node.domain == DOMAIN
        assert attributes["plugin_version"] == OPS["VitPruneToMeMerge"].version == "2"
        assert attributes["plugin_namespace"] == OPS["VitPruneToMeMerge"].namespace


def test_dynamic_batch_plugin_export_runs_at_several_batches(export_cache):
    model, result = export_cache("vitprune_tiny_patch4_32", "tome", rate=0.1, dynamic_batch=True, plugins=True)
    assert result.parity_batches == [1, 3] and result.parity_max_abs_diff <= TOLERANCE
    assert parity(model, result.path, batch=5, custom_ops=True) <= TOLERANCE


# -- CLI --------------------------------------------------------------------------------------------------------
runner = CliRunner()


def test_cli_rewrite_to_standard_and_back_refused(export_cache, tmp_path):
    _, result = export_cache("vitprune_tiny_patch4_32", "tome", rate=0.1, dynamic_batch=True, plugins=True)
    output = tmp_path / "standard.onnx"
    run = runner.invoke(app, ["rewrite", str(result.path), "--to", "standard", "-o", str(output), "--json"])
    assert run.exit_code == 0, run.output
    assert '"plugin_nodes_out": 0' in run.output and output.is_file()
    again = runner.invoke(app, ["rewrite", str(output), "--to", "plugins", "-o", str(tmp_path / "p.onnx")])
    assert again.exit_code == 2
    assert "no vitprune custom nodes" in again.output and not (tmp_path / "p.onnx").exists()


def test_cli_rewrite_bad_inputs_exit_2(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not an onnx file")
    run = runner.invoke(app, ["rewrite", str(corrupt), "--to", "standard", "-o", str(tmp_path / "out.onnx")])
    assert run.exit_code == 2 and "not a readable ONNX file" in run.output
    assert list(tmp_path.iterdir()) == [corrupt]  # nothing half-written
    missing = runner.invoke(app, ["rewrite", str(tmp_path / "missing.onnx"), "--to", "standard"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    bad_target = runner.invoke(app, ["rewrite", str(corrupt), "--to", "tensorrt"])
    assert bad_target.exit_code == 2 and "--to" in bad_target.output


def test_plugins_refused_for_a_method_without_plugin(tmp_path):
    from tests.helpers import base_model
    from vitprune_export import apply_method, export_onnx
    from vitprune_export.errors import VitPruneError

    model = apply_method(base_model("vitprune_tiny_patch4_32"), "evit", rate=0.1)
    with pytest.raises(VitPruneError, match="'evit' has no TensorRT plugin"):
        export_onnx(model, tmp_path / "evit.onnx", plugins=True)
    assert list(tmp_path.iterdir()) == []
