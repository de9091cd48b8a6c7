"""Automatic pruning-rate adjustment (VPA paper §3.3, Algorithm 2): Φ (Eq. 6), GAS (Eq. 7–10), the loop."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from tests.accuracy.test_finetune import TINY, trained_tiny_checkpoint
from vitprune_export.accuracy.adjust import (
    AdjustSettings,
    RateAdjuster,
    gas_scale,
    gas_update,
    gradient_change,
    phi,
    removed_for_rates,
    switch_epochs,
)
from vitprune_export.accuracy.finetune import EpochRecord
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.methods import get_method


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    return trained_tiny_checkpoint(tmp_path_factory)


# -- Φ, Eq. 6 -------------------------------------------------------------------------------
def test_phi_matches_equation_6_on_hand_made_losses():
    for previous, current in ((1.0, 0.9), (0.5, 0.52), (2.0, 1.0), (0.3, 0.3)):
        logistic = 0.05 * (2.0 / (1.0 + math.exp(-10.0 * (previous - current))) - 1.0)
        assert phi(previous, current, max_step=0.05, alpha=10.0) == pytest.approx(logistic, abs=1e-12)
    assert phi(1.0, 0.9) == pytest.approx(0.05 * math.tanh(0.5))  # = 0.0231…
    assert phi(0.7, 0.7) == 0.0


def test_phi_is_bounded_by_max_step_and_signed_by_the_loss_change():
    assert phi(1e6, 0.0, max_step=0.05) == pytest.approx(0.05)  # no overflow, at the bound
    assert phi(0.0, 1e6, max_step=0.05) == pytest.approx(-0.05)
    for previous, current in ((3.0, 0.1), (0.1, 3.0), (1.0, 0.99), (1.0, 1.01)):
        step = phi(previous, current, max_step=0.03, alpha=25.0)
        assert -0.03 <= step <= 0.03
        assert math.copysign(1, step) == math.copysign(1, previous - current)  # falling loss → prune more
    assert phi(1.0, 0.95, alpha=20.0) > phi(1.0, 0.95, alpha=10.0) > phi(1.0, 0.98, alpha=10.0) > 0


# -- GAS, Eq. 7–10 --------------------------------------------------------------------------
def test_gas_scale_equation_9_on_hand_made_gradients():
    same = [torch.ones(3, 2), torch.zeros(4)]
    assert gas_scale(same, same) == pytest.approx(0.5)  # no gradient change → R = Sigmoid(0)
    unit = [torch.ones(3, 2), torch.tensor([1.0, 0.0, 0.0, 0.0])]  # Σ (G − G')² = 1
    assert gradient_change(same, unit) == pytest.approx(1.0)
    assert gas_scale(same, unit) == pytest.approx(1 / (1 + math.e))  # Sigmoid(−1) = 0.2689
    big = [torch.ones(3, 2) * 2, torch.zeros(4)]  # Σ = 6
    assert gas_scale(same, big) == pytest.approx(1 / (1 + math.exp(6)))
    assert gas_scale(same, big) < gas_scale(same, unit) < gas_scale(same, same)  # larger change → smaller R
    assert gas_scale(same, [torch.full((3, 2), 1e6), torch.zeros(4)]) >= 0.0  # no overflow


def test_gas_update_equation_10_stays_within_the_step():
    assert gas_update(0.10, 0.05, 0.5) == pytest.approx(0.125)
    assert gas_update(0.10, -0.05, 0.25) == pytest.approx(0.0875)
    for scale in (0.0, 0.1, 0.5):
        assert abs(gas_update(0.2, 0.05, scale) - 0.2) <= 0.05


# -- the loop's bookkeeping ---------------------------------------------------------------------
def test_switch_epochs_follow_algorithm_2_line_4():
    assert switch_epochs(96, 6, 8) == list(range(2, 97, 2))  # ⌊96 / 48⌋ = 2
    assert switch_epochs(200, 12, 8) == [2 * i for i in range(1, 97)]
    assert switch_epochs(4, 6, 1) == [1, 2, 3, 4]  # T < mL: a new layer every epoch


def test_removed_for_rates_caps_and_never_empties():
    topk, tome = get_method("topk"), get_method("tome")
    assert removed_for_rates(65, 1, [0.1] * 6, topk) == [6, 5, 5, 4, 4, 4]  # = build_schedule(rate=0.1)
    assert removed_for_rates(65, 1, [0.9] * 3, tome)[0] == 32  # ToMe merges at most half the patch tokens
    removed = removed_for_rates(65, 1, [0.95] * 6, topk)
    assert 65 - sum(removed) >= 2  # the class token and one patch token stay


def test_rate_adjuster_cycles_layers_and_moves_rates_by_at_most_half_a_step():
    from vitprune_export.accuracy.data import Preprocessing, load_dataset
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.patch import keep_counts

    torch.manual_seed(0)
    model = create_model(TINY, "random")
    train = load_dataset("digits", "test", Preprocessing.for_model(model))
    settings = AdjustSettings(initial_rate=0.1, layer_loops=1, update_every=2, max_step=0.05, alpha=10.0)
    adjuster = RateAdjuster(model, get_method("topk"), train, epochs=12, settings=settings, sample_batch=8)
    assert keep_counts(model) == [59, 54, 49, 45, 41, 37]
    losses = [2.0, 1.8, 1.6, 1.5, 1.45, 1.5, 1.6, 1.7, 1.6, 1.5, 1.4, 1.3]
    for epoch, loss in enumerate(losses, start=1):
        adjuster(EpochRecord(epoch=epoch, train_loss=loss, lr=0.0, accuracy=None, seconds=0.0))
    # ⌊12/6⌋ = 2: layer 0 from epoch 2, layer 1 from epoch 4, …; the first average only sets 𝓛_previous
    assert [u.layer for u in adjuster.updates] == [1, 2, 3, 4, 5]
    assert [u.epoch for u in adjuster.updates] == [4, 6, 8, 10, 12]
    assert [u.loss_current for u in adjuster.updates] == [1.5, 1.5, 1.7, 1.5, 1.3]  # the list restarts at a switch
    assert adjuster.updates[1].step == 0 and adjuster.updates[1].scale == 0.5  # same loss: no change
    for update in adjuster.updates:
        assert update.step == pytest.approx(phi(update.loss_previous, update.loss_current))
        assert 0 < update.scale <= 0.5 and abs(update.rate_after - update.rate_before) <= 0.5 * 0.05 + 1e-12
    assert adjuster.updates[2].step < 0 and adjuster.rates[3] < 0.1  # the loss rose: layer 3 is pruned less
    assert adjuster.rates[1] > 0.1 and adjuster.rates[0] == 0.1
    assert len(adjuster.curve) == 12 and adjuster.curve[-1] == adjuster.rates
    assert keep_counts(model) == list(adjuster.schedule().tokens_out)  # the model carries the latest rates


# -- end to end: adjust → schedule JSON → export gives exactly those keep counts ------------------
def test_adjust_writes_a_schedule_that_export_reproduces(tiny_checkpoint, tmp_path):
    from vitprune_export import apply_method, export_onnx
    from vitprune_export.export.onnx import read_metadata
    from vitprune_export.pruning.models import create_model
    from vitprune_export.pruning.schedule import load_removed_counts

    path, _ = tiny_checkpoint
    output = tmp_path / "schedule.json"
    result = CliRunner().invoke(
        app,
        [
            "adjust",
            "--model",
            TINY,
            "--weights",
            str(path),
            "--data",
            "digits",
            "--method",
            "topk-vpa",
            "--epochs",
            "3",
            "--layer-loops",
            "1",
            "--update-every",
            "1",
            "--batch",
            "64",
            "--lr",
            "2e-4",
            "--rate",
            "0.1",
            "-o",
            str(output),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(output.read_text())
    assert len(data["updates"]) == 2 and len(data["curve"]) == 3 and len(data["rates"]) == 6
    assert data["rates"] != [0.1] * 6  # two layers were adjusted
    for update in data["updates"]:
        assert abs(update["rate_after"] - update["rate_before"]) <= 0.5 * 0.05 + 1e-12
    removed = load_removed_counts(output)
    assert removed == removed_for_rates(65, 1, data["rates"], get_method("topk-vpa"))
    model = apply_method(create_model(TINY, weights=path), "topk-vpa", schedule=output)
    exported = export_onnx(model, tmp_path / "adjusted.onnx", model_name=TINY, check=True)
    assert exported.keep_counts == data["tokens_out"]
    assert read_metadata(exported.path)["schedule"]["removed"] == removed


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        (["--method", "random"], "adjust works with the methods that take a manual rate"),
        (["--max-step", "1.5"], "--max-step must be in (0, 1)"),
        (["--update-every", "0"], "--update-every must be ≥ 1"),
    ],
)
def test_cli_adjust_bad_input_exits_2(tmp_path, arguments, fragment):
    result = CliRunner().invoke(
        app,
        [
            "adjust",
            "--model",
            TINY,
            "--weights",
            "random",
            "--data",
            "digits",
            "--epochs",
            "1",
            "-o",
            str(tmp_path / "s.json"),
            *arguments,
        ],
    )
    assert result.exit_code == 2
    assert fragment in result.output
    assert not (tmp_path / "s.json").exists()


def test_library_rejects_methods_without_a_rate():
    from vitprune_export.accuracy.adjust import adjust_rates
    from vitprune_export.accuracy.finetune import TrainingRecipe

    with pytest.raises(VitPruneError, match="not 'none'"):
        adjust_rates(torch.nn.Module(), get_method("none"), None, None, TrainingRecipe(epochs=1))
