"""Run by tests/accuracy/test_distributed.py, alone or under torchrun: GAS rate adjustment on a slice of the
digits; each process writes what it decided (rank_<r>.json) and its weights (rank_<r>.pt) to argv[1]."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from vitprune_export.accuracy.adjust import AdjustSettings, adjust_rates
from vitprune_export.accuracy.data import Preprocessing, TensorImageDataset, load_dataset
from vitprune_export.accuracy.finetune import RunSettings, TrainingRecipe
from vitprune_export.accuracy.runtime import processes
from vitprune_export.pruning.methods import get_method
from vitprune_export.pruning.models import create_model

TINY = "vitprune_tiny_patch4_32"
RECIPE = TrainingRecipe(epochs=3, batch_size=32, lr=2e-3, seed=0)
SETTINGS = AdjustSettings(initial_rate=0.1, layer_loops=1, update_every=1, sample_batch=16)
TRAIN_IMAGES, TEST_IMAGES = 160, 60


def main(folder: Path) -> None:
    with processes("cpu") as (group, device):
        model = create_model(TINY, "random", seed=0, num_classes=10)
        preprocessing = Preprocessing.for_model(model)
        train, test = load_dataset("digits", "train", preprocessing), load_dataset("digits", "test", preprocessing)
        train = TensorImageDataset("train", train.images[:TRAIN_IMAGES], train.labels[:TRAIN_IMAGES], train.classes)
        test = TensorImageDataset("test", test.images[:TEST_IMAGES], test.labels[:TEST_IMAGES], test.classes)
        result = adjust_rates(
            model,
            get_method("topk"),
            train,
            test,
            RECIPE,
            SETTINGS,
            run=RunSettings(device="cpu"),
            processes=group,
            device=device,
            progress=False,
        )
        decided = {
            "rank": group.rank,
            "world_size": group.world_size,
            "rates": result.rates,
            "removed": list(result.schedule.removed),
            "train_loss": [record.train_loss for record in result.history],
            "accuracy": result.accuracy,
            "updates": [update.epoch for update in result.updates],
        }
        (folder / f"rank_{group.rank}.json").write_text(json.dumps(decided))
        torch.save(model.state_dict(), folder / f"rank_{group.rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
