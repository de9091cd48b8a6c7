"""Calibration images for quantization: real images through the loaders ``eval`` uses, at the model's data config.

The images come from the training split (``digits``: the 1,437 training digits; a folder: ``DIR/train``
or the seeded 80 %), so that the images ``eval`` scores (the test split) are never calibrated on. A
seeded random subset of ``count`` images is taken, so that a class-sorted folder gives every class its
share.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator

import torch

from ..errors import VitPruneError
from ..record import PruningRecord
from .data import ImageDataset, Preprocessing, data_loader, load_dataset

DEFAULT_IMAGES = 256
MIN_IMAGES = 8
CALIBRATION_SPLIT = "train"
SEED = 0


def preprocessing_of(record: PruningRecord) -> tuple[Preprocessing, torch.nn.Module]:
    """The data config (timm's) of the record's model, from an unweighted copy of it; returns (config, model)."""
    from ..pruning.models import create_model

    options = {"num_classes": record.num_classes} if record.num_classes else {}
    with warnings.catch_warnings():  # its weights are never used: no RANDOM WEIGHTS banner
        warnings.simplefilter("ignore")
        model = create_model(record.model, "random", **options)
    return Preprocessing.for_model(model), model


def calibration_set(data: str, record: PruningRecord, count: int = DEFAULT_IMAGES) -> ImageDataset:
    """``count`` images of ``data``'s training split for the record's model; one-line errors for a missing or
    empty folder, too few images, or more classes than the model predicts."""
    if count < MIN_IMAGES:
        raise VitPruneError(f"--images must be at least {MIN_IMAGES} for a usable calibration, got {count}")
    preprocessing, model = preprocessing_of(record)
    dataset = load_dataset(data, CALIBRATION_SPLIT, preprocessing)
    outputs = int(record.num_classes or getattr(model, "num_classes", 0) or 0)
    if outputs and dataset.num_classes > outputs:
        raise VitPruneError(
            f"{dataset.name} has {dataset.num_classes} classes but the model predicts {outputs}; calibrate on "
            "images of the classes it was trained on: give another --data"
        )
    if len(dataset) < count:
        raise VitPruneError(
            f"{dataset.name} holds {len(dataset)} images, fewer than --images {count}; "
            f"pass --images {len(dataset)} or fewer, or add images"
        )
    chosen = sorted(random.Random(SEED).sample(range(len(dataset)), count))
    subset = torch.utils.data.Subset(dataset, chosen)
    subset.name, subset.classes = dataset.name, dataset.classes
    return subset


def calibration_batches(dataset, batch_size: int = 32) -> Iterator:
    """The images of ``dataset`` as float32 numpy batches (N, C, H, W), for the quantizer's reader."""
    for images, _ in data_loader(dataset, batch_size):
        yield images.numpy()


__all__ = ["DEFAULT_IMAGES", "calibration_batches", "calibration_set", "preprocessing_of"]
