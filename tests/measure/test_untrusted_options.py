"""Options read from a file reach no library keyword argument unchecked: an ONNX record's method options
are checked against the method's declared knobs, a checkpoint's model arguments against a short list."""

from __future__ import annotations

import json

import onnx
import pytest
import torch
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.models import create_model
from vitprune_export.record import METADATA_KEY

TINY = "vitprune_tiny_patch4_32"
runner = CliRunner()


def _with_options(exported_path, tmp_path, options) -> str:
    """A copy of an exported file whose record carries ``options`` as its method options."""
    proto = onnx.load(str(exported_path))
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            record = json.loads(prop.value)
            record["method_options"] = options
            prop.value = json.dumps(record)
    path = tmp_path / "crafted.onnx"
    onnx.save(proto, str(path))
    return str(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model_kwargs": {"checkpoint_path": "SECRET"}}, "an option 'model_kwargs' it does not declare"),
        ({"weights": "SECRET"}, "an option 'weights' it does not declare"),
        ({"score": 3}, "option 'score' of method 'topk' is 3, not a str"),
    ],
)
def test_a_record_cannot_hand_timm_or_the_loader_an_argument(export_cache, tmp_path, options, message):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    secret = tmp_path / "SECRET"
    secret.write_bytes(b"not a checkpoint")
    options = json.loads(json.dumps(options).replace("SECRET", str(secret)))
    crafted = _with_options(exported.path, tmp_path, options)
    output = tmp_path / "r.json"
    result = runner.invoke(
        app, ["profile", crafted, "--backend", "torch-cpu", "--warm-up", "0", "--iterations", "1", "-o", str(output)]
    )
    assert result.exit_code == 2, result.output
    assert message in result.output and "re-export" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert not output.exists()


@pytest.mark.parametrize(
    ("model_kwargs", "message"),
    [
        ({"checkpoint_path": "x.pt"}, "asks timm for model argument 'checkpoint_path'"),
        ({"pretrained_cfg_overlay": {"file": "x"}}, "asks timm for model argument 'pretrained_cfg_overlay'"),
        ({"img_size": 64}, "asks timm for model argument 'img_size'"),
        ({"num_classes": "10"}, "model argument 'num_classes' is '10', not a whole number"),
        ({"num_classes": 0}, "not a whole number in 1"),
        (["num_classes"], "its model_kwargs are a list"),
    ],
)
def test_a_checkpoint_carries_only_the_listed_model_arguments(tmp_path, model_kwargs, message):
    model = create_model(TINY, "random")
    path = tmp_path / "tiny.pt"
    torch.save({"model_name": TINY, "model_kwargs": model_kwargs, "state_dict": model.state_dict()}, path)
    with pytest.raises(VitPruneError, match=message):
        create_model(TINY, path)


def test_a_checkpoint_with_a_listed_argument_loads(tmp_path):
    model = create_model(TINY, "random", num_classes=3)
    path = tmp_path / "tiny.pt"
    torch.save({"model_name": TINY, "model_kwargs": {"num_classes": 3}, "state_dict": model.state_dict()}, path)
    assert create_model(TINY, path).num_classes == 3
