"""Training state: written atomically every epoch, read without pickled code, and a resumed run
ends exactly where the uninterrupted one does (weights, optimiser, GAS rates, history)."""

from __future__ import annotations

import pytest
import torch

from vitprune_export.accuracy.adjust import AdjustSettings, adjust_rates
from vitprune_export.accuracy.data import Preprocessing, TensorImageDataset, load_dataset
from vitprune_export.accuracy.finetune import TrainingRecipe, load_training_state
from vitprune_export.errors import VitPruneError
from vitprune_export.pruning.methods import get_method
from vitprune_export.pruning.models import create_model

TINY = "vitprune_tiny_patch4_32"
RECIPE = TrainingRecipe(epochs=3, batch_size=32, lr=2e-3, seed=0)
SETTINGS = AdjustSettings(initial_rate=0.1, layer_loops=1, update_every=1, sample_batch=16)


@pytest.fixture(scope="module")
def small_digits():
    model = create_model(TINY, "random", seed=0)
    train = load_dataset("digits", "train", Preprocessing.for_model(model))
    return TensorImageDataset("digits/train[:96]", train.images[:96], train.labels[:96], train.classes)


class Interrupt(Exception):
    pass


def _adjust(data, state_path, resume=False, stop_after=None):
    model = create_model(TINY, "random", seed=0, num_classes=10)

    def log(line: str) -> None:
        if stop_after is not None and line.startswith(f"epoch {stop_after}/"):
            raise Interrupt  # as if the job were killed after this epoch's state was written

    result = adjust_rates(
        model,
        get_method("topk"),
        data,
        None,
        RECIPE,
        SETTINGS,
        progress=False,
        log=log,
        state_path=state_path,
        resume=resume,
    )
    return model, result


@pytest.fixture(scope="module")
def uninterrupted(small_digits, tmp_path_factory):
    path = tmp_path_factory.mktemp("whole") / "whole.state.pt"
    model, result = _adjust(small_digits, path)
    return model, result, path


def test_resume_ends_where_the_uninterrupted_run_ends(small_digits, uninterrupted, tmp_path):
    whole_model, whole, _ = uninterrupted
    with pytest.raises(Interrupt):
        _adjust(small_digits, tmp_path / "cut.state.pt", stop_after=2)
    assert load_training_state(tmp_path / "cut.state.pt")["epoch"] == 2
    resumed_model, resumed = _adjust(small_digits, tmp_path / "cut.state.pt", resume=True)

    assert [update.epoch for update in whole.updates] == [2, 3]  # GAS state (losses, generator) used after the cut
    assert resumed.rates == whole.rates and resumed.curve == whole.curve
    assert list(resumed.schedule.removed) == list(whole.schedule.removed)
    assert [r.train_loss for r in resumed.history] == [r.train_loss for r in whole.history]
    for key, value in whole_model.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert load_training_state(tmp_path / "cut.state.pt")["epoch"] == 3


def test_resume_refuses_other_options_a_finished_run_and_unsafe_files(small_digits, uninterrupted, tmp_path):
    import pickle
    import shutil

    path = tmp_path / "run.state.pt"
    with pytest.raises(VitPruneError, match="no training state"):
        _adjust(small_digits, path, resume=True)
    shutil.copy(uninterrupted[2], path)
    with pytest.raises(VitPruneError, match="already finished its 3 epochs"):
        _adjust(small_digits, path, resume=True)
    state = torch.load(path, weights_only=True)
    state["epoch"], state["recipe"]["lr"] = 1, 1e-3
    torch.save(state, path)
    with pytest.raises(VitPruneError, match=r"other training options than the saved run \(lr 0.001 → 0.002\)"):
        _adjust(small_digits, path, resume=True)

    class Payload:  # a pickle that would run code when loaded without weights_only
        def __reduce__(self):
            return (print, ("pickled code ran",))

    path.write_bytes(pickle.dumps({"format": "vitprune.training-state/1", "x": Payload()}))
    with pytest.raises(VitPruneError, match="cannot be read as a training state"):
        load_training_state(path)
