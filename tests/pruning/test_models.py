"""Weights: auto falls back to random fast and loudly offline; checkpoints load or fail clearly."""

import time

import pytest
import torch

from vitprune_export._compat import import_timm
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.models import create_model, weights_source


def test_timm_imports_with_this_torch():
    timm = import_timm()
    assert "vit_small_patch16_224" in timm.list_models("vit_small*")


def test_auto_weights_fall_back_to_random_quickly_and_loudly(monkeypatch):
    monkeypatch.setattr("vitprune_export.pruning.models.hub_reachable", lambda timeout=2.0: False)
    started = time.perf_counter()
    with pytest.warns(RuntimeWarning, match="USING RANDOM WEIGHTS"):
        model = create_model("deit_tiny_patch16_224", "auto")
    assert time.perf_counter() - started < 20  # no ~47 s of hub retries
    assert weights_source(model).startswith("random")


def test_seeded_random_weights_repeat_and_leave_the_global_generator_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = create_model("vitprune_tiny_patch4_32", "random", seed=0)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    again, other = (
        create_model("vitprune_tiny_patch4_32", "random", seed=0),
        create_model("vitprune_tiny_patch4_32", "random", seed=1),
    )
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert not torch.equal(first.state_dict()["head.weight"], other.state_dict()["head.weight"])
    assert weights_source(first) == "random (seed 0)"
    assert weights_source(create_model("vitprune_tiny_patch4_32", "random")) == "random"


def test_cli_random_weights_are_seeded_and_recorded(tmp_path):
    import json

    from typer.testing import CliRunner

    from vitprune_export.cli import app

    outputs = []
    for name in ("a", "b"):
        target = tmp_path / f"{name}.onnx"
        result = CliRunner().invoke(
            app,
            [
                "export",
                "--model",
                "vitprune_tiny_patch4_32",
                "--weights",
                "random",
                "--method",
                "topk",
                "--rate",
                "0.1",
                "-o",
                str(target),
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.stdout))
        assert outputs[-1]["weights"] == "random (seed 0)"
    assert (tmp_path / "a.onnx").read_bytes() == (
        tmp_path / "b.onnx"
    ).read_bytes()  # the same command writes the same model


def test_checkpoint_round_trip(tmp_path):
    model = create_model("vitprune_tiny_patch4_32", "random")
    path = tmp_path / "tiny.pt"
    torch.save({"model_name": "vitprune_tiny_patch4_32", "model_kwargs": {}, "state_dict": model.state_dict()}, path)
    loaded = create_model("vitprune_tiny_patch4_32", path)
    assert weights_source(loaded) == "checkpoint:tiny.pt"
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"garbage")
    with pytest.raises(VitPruneError, match="cannot be read"):
        create_model("vitprune_tiny_patch4_32", path)
    with pytest.raises(VitPruneError, match="does not exist"):
        create_model("vitprune_tiny_patch4_32", tmp_path / "missing.pt")


def test_checkpoint_for_another_model_is_refused(tmp_path):
    model = create_model("vitprune_tiny_patch4_32", "random")
    path = tmp_path / "tiny.pt"
    torch.save({"model_name": "vitprune_tiny_patch4_32", "state_dict": model.state_dict()}, path)
    with pytest.raises(VitPruneError, match="saved for model 'vitprune_tiny_patch4_32'"):
        create_model("deit_tiny_patch16_224", path)
    torch.save(model.state_dict(), path)
    with pytest.raises(VitPruneError, match="does not fit model 'deit_tiny_patch16_224'"):
        create_model("deit_tiny_patch16_224", path)


def test_unknown_model_suggests_near_miss():
    with pytest.raises(VitPruneError, match="did you mean 'deit_tiny_patch16_224'"):
        create_model("deit_tiny_patch16_244", "random")
