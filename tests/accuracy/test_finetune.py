"""Fine-tuning (AdamW + warm-up cosine, VPA paper §4.1.1) and its checkpoints.

``trained_tiny_checkpoint`` fine-tunes the tiny ViT on digits (or digits-canvas)
once per session (test_evaluate and test_adjust import it), so the slow part runs
once per data set.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from typer.testing import CliRunner

from vitprune_export.accuracy.finetune import TrainingRecipe, paper_max_lr, warmup_cosine_lr
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError

TINY = "vitprune_tiny_patch4_32"
# The recipe that takes the tiny ViT from random weights to ≥ 90 % on digits (docs/accuracy.md).
TINY_RECIPE = TrainingRecipe(epochs=24, batch_size=64, lr=2e-3, seed=0)
_trained: dict[str, tuple] = {}


def trained_tiny_checkpoint(tmp_path_factory, data: str = "digits") -> tuple:
    """(checkpoint path, test top-1) of the tiny ViT fine-tuned on ``data``; trained once per session.

    Under pytest-xdist the workers share pytest's base temporary folder: the first worker to take the
    lock trains and saves, the others wait and read the same checkpoint (training is ~2 CPU-minutes).
    """
    if data not in _trained:
        from filelock import FileLock

        from vitprune_export.accuracy.finetune import save_checkpoint
        from vitprune_export.pruning.models import load_checkpoint

        shared = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            shared = shared.parent
        path = shared / f"tiny_{data}.pt"
        with FileLock(str(path) + ".lock"):
            if not path.is_file():
                save_checkpoint(path, _train_tiny(data))
        _trained[data] = (path, load_checkpoint(path)["accuracy"])
    return _trained[data]


def _train_tiny(data: str) -> dict:
    from vitprune_export.accuracy.data import Preprocessing, load_dataset
    from vitprune_export.accuracy.finetune import checkpoint_dict, finetune
    from vitprune_export.pruning.models import create_model

    torch.manual_seed(0)
    model = create_model(TINY, "random")
    preprocessing = Preprocessing.for_model(model)
    train, test = load_dataset(data, "train", preprocessing), load_dataset(data, "test", preprocessing)
    result = finetune(model, train, test, TINY_RECIPE, progress=False)
    print(
        f"\ntiny ViT on {data}: test top-1 {result.accuracy:.4f} after {result.epochs} epochs, {result.seconds:.0f} s; "
        f"losses {[round(r.train_loss, 3) for r in result.history]}"
    )
    return checkpoint_dict(model, TINY, {}, epoch=result.epochs, accuracy=result.accuracy)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return trained_tiny_checkpoint(tmp_path_factory)


def test_learning_rate_follows_warmup_then_equation_11():
    recipe = TrainingRecipe(epochs=20, lr=1e-3, min_lr=1e-6, warmup_epochs=5)
    assert warmup_cosine_lr(0, recipe) == pytest.approx(1e-6)
    assert warmup_cosine_lr(2.5, recipe) == pytest.approx((1e-3 + 1e-6) / 2)
    assert warmup_cosine_lr(5, recipe) == pytest.approx(1e-3)  # top of the cosine
    assert warmup_cosine_lr(12.5, recipe) == pytest.approx((1e-3 + 1e-6) / 2)  # cos(π/2) = 0
    assert warmup_cosine_lr(20, recipe) == pytest.approx(1e-6)
    expected = 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * (9 - 5) / (20 - 5)))
    assert warmup_cosine_lr(9, recipe) == pytest.approx(expected)


def test_paper_defaults():
    assert paper_max_lr(16) == pytest.approx(5e-4 * 16 / 512)
    recipe = TrainingRecipe(epochs=200)
    assert recipe.max_lr == pytest.approx(1.5625e-5) and recipe.warmup == 5
    assert TrainingRecipe(epochs=10).warmup == 1  # a short run warms up for a tenth of it
    with pytest.raises(VitPruneError, match="--warmup-epochs"):
        TrainingRecipe(epochs=3, warmup_epochs=3).validate()
    with pytest.raises(VitPruneError, match="--lr must be a positive"):
        TrainingRecipe(epochs=3, lr=-1.0).validate()


@pytest.mark.parametrize("method", ["topk-vpa", "tome", "evit"])
def test_gradients_flow_through_a_pruned_model(method):
    from vitprune_export import apply_method
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import keep_counts

    torch.manual_seed(0)
    model = apply_method(create_model(TINY, "random"), method, rate=0.2).train()
    assert keep_counts(model)[-1] < 65
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name in ("patch_embed.proj.weight", "pos_embed", "blocks.0.attn.qkv.weight", "blocks.5.mlp.fc2.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_finetune_reaches_90_percent_on_digits(tiny_checkpoint):
    path, accuracy = tiny_checkpoint
    assert accuracy >= 0.90


def test_checkpoint_format_is_read_by_create_model(tiny_checkpoint):
    from vitprune_export.pruning.models import create_model, load_checkpoint, weights_source

    path, accuracy = tiny_checkpoint
    checkpoint = load_checkpoint(path)
    assert set(checkpoint) == {"model_name", "model_kwargs", "state_dict", "method", "schedule", "epoch", "accuracy"}
    assert checkpoint["model_name"] == TINY and checkpoint["epoch"] == TINY_RECIPE.epochs
    assert checkpoint["accuracy"] == pytest.approx(accuracy)
    model = create_model(TINY, weights=path)
    assert weights_source(model) == f"checkpoint:{path.name}"
    assert torch.equal(model.state_dict()["head.weight"], checkpoint["state_dict"]["head.weight"])
    with pytest.raises(VitPruneError, match="was saved for model"):
        create_model("deit_tiny_patch16_224", weights=path)


def test_cli_finetune_on_an_image_folder_resizes_the_head(tmp_path):
    from PIL import Image

    from vitprune_export.pruning.models import create_model, load_checkpoint

    for label, colour in enumerate(((255, 0, 0), (0, 0, 255), (0, 255, 0))):
        (tmp_path / "data" / f"class{label}").mkdir(parents=True)
        for index in range(5):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "data" / f"class{label}" / f"{index}.png")
    output = tmp_path / "ckpt.pt"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            "--model",
            TINY,
            "--weights",
            "random",
            "--data",
            str(tmp_path / "data"),
            "--epochs",
            "2",
            "--batch",
            "4",
            "--lr",
            "1e-3",
            "--method",
            "topk",
            "--rate",
            "0.1",
            "-o",
            str(output),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(output)
    assert checkpoint["model_kwargs"] == {"num_classes": 3}
    assert checkpoint["method"]["name"] == "topk" and checkpoint["schedule"]["removed"][0] == 6
    assert create_model(TINY, weights=output).num_classes == 3


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--data", "/nonexistent/folder"], "neither 'digits', 'digits-canvas' nor an existing folder"),
        (["--data", "digits", "--lr", "-1"], "--lr must be a positive number"),
        (["--data", "digits", "--method", "topq"], "unknown method 'topq'"),
    ],
)
def test_cli_finetune_bad_input_exits_2(tmp_path, arguments, fragment):
    result = CliRunner().invoke(
        app,
        ["finetune", "--model", TINY, "--weights", "random", "--epochs", "1", "-o", str(tmp_path / "x.pt"), *arguments],
    )
    assert result.exit_code == 2
    assert fragment in result.output
    assert not (tmp_path / "x.pt").exists()


def _colour_folder(root):
    from PIL import Image

    for label, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(4):
            Image.new("RGB", (8, 8), tuple(max(0, c - 20 * index) for c in colour)).save(
                root / f"class{label}" / f"{index}.png"
            )
    return root


def test_cli_run_seed_takes_effect_and_the_random_methods_token_seed_is_its_own_option(tmp_path):
    """--seed is the run's seed (weights, head, shuffling); the random method's choice is --token-seed."""
    from vitprune_export.pruning.models import load_checkpoint

    data = _colour_folder(tmp_path / "data")

    def run(name, *extra):
        output = tmp_path / f"{name}.pt"
        arguments = ["finetune", "--model", TINY, "--weights", "random", "--data", str(data), "--epochs", "1"]
        arguments += ["--batch", "4", "--method", "random", "--rate", "0.2", "--device", "cpu", "-o", str(output)]
        result = CliRunner().invoke(app, [*arguments, *extra, "--json"])
        assert result.exit_code == 0, result.output
        return load_checkpoint(output)

    first, again, other = run("a", "--seed", "0"), run("b", "--seed", "0"), run("c", "--seed", "5")
    assert all(torch.equal(first["state_dict"][k], again["state_dict"][k]) for k in first["state_dict"])
    assert not torch.equal(first["state_dict"]["head.weight"], other["state_dict"]["head.weight"])
    assert first["method"]["options"] == other["method"]["options"] == {"token_seed": 0}
    assert run("d", "--seed", "5", "--token-seed", "3")["method"]["options"] == {"token_seed": 3}
