"""Image classification data for evaluation and fine-tuning.

Three sources, named by ``--data``:

* ``digits`` — scikit-learn's bundled 8×8 handwritten digits (1,797 images,
  10 classes; no download). Pixels (0–16) are scaled to [0, 1], resized
  bilinearly to the model's input size, repeated over 3 channels and normalised
  with the model's mean/std. A fixed, seeded, stratified split keeps 20 % of the
  images (360) as the test set, so every command sees the very same images.
* ``digits-canvas`` — the same digits and split, each resized to 3/8 of the
  input side (12 px at 32 × 32) and centred on a black canvas of the input size,
  so most patches are background, as in a photo of an object. On plain
  ``digits`` every patch carries stroke pixels and a random subset of tokens
  serves as well as a chosen one; here the choice of tokens matters
  (docs/accuracy.md).
* a folder — an ImageFolder tree (``DIR/<class>/<image>``), read with PIL,
  resized (bilinear) and normalised in plain Python (no torchvision). When
  ``DIR/train`` and ``DIR/val`` (or ``DIR/test``) both exist they are the
  splits; otherwise the images are split 80/20 with a fixed seed.

Everything is a :class:`torch.utils.data.Dataset` yielding ``(image, label)``
with ``image`` a float tensor of the model's input shape.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F

from ..errors import MissingDependencyError, VitPruneError, did_you_mean

Split = Literal["train", "test", "all"]
DIGITS = "digits"
DIGITS_CANVAS = "digits-canvas"
CANVAS_DIGIT_SHARE = 3 / 8  # digit side / input side on ``digits-canvas``
SPLIT_SEED = 0
TEST_SHARE = 0.2
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Preprocessing:
    """How images become model inputs: size (C, H, W) and per-channel mean/std."""

    input_size: tuple[int, int, int]
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> Preprocessing:
        """The input size of ``model`` and the mean/std of its timm pretrained config."""
        from ..pruning.models import input_size_of

        config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
        channels = input_size_of(model)[0]
        mean = tuple(float(v) for v in config.get("mean", (0.5,) * channels))
        std = tuple(float(v) for v in config.get("std", (0.5,) * channels))
        return cls(input_size_of(model), mean, std)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` (…, C, H, W) in [0, 1] → ``(x − mean) / std``."""
        mean = torch.tensor(self.mean, dtype=images.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype).view(-1, 1, 1)
        return (images - mean) / std


class ImageDataset(torch.utils.data.Dataset):
    """Base: a named split with ``classes`` (label → class name)."""

    name: str = ""
    classes: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class TensorImageDataset(ImageDataset):
    """Images already decoded into one tensor (N, C, H, W) with labels (N,)."""

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
        self.name, self.images, self.labels, self.classes = name, images, labels, classes

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class FolderImageDataset(ImageDataset):
    """Images read lazily from files with PIL; ``samples`` is a list of (path, label)."""

    def __init__(self, name: str, samples: list[tuple[Path, int]], classes: list[str], preprocessing: Preprocessing):
        self.name, self.samples, self.classes, self.preprocessing = name, samples, classes, preprocessing

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return load_image(path, self.preprocessing), label


def load_image(path: Path, preprocessing: Preprocessing) -> torch.Tensor:
    """One image file → a normalised (C, H, W) float tensor (bilinear resize, no crop)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib/timm
        raise MissingDependencyError("reading image folders needs Pillow: pip install pillow") from None
    channels, height, width = preprocessing.input_size
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if channels == 3 else "L").resize((width, height), Image.BILINEAR)
            data = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    except OSError as error:
        raise VitPruneError(f"cannot read image {str(path)!r} ({error}); remove it or replace it") from None
    pixels = data.view(height, width, channels).permute(2, 0, 1).float() / 255.0
    return preprocessing.normalise(pixels)


# -- digits -------------------------------------------------------------------------------
def _digits_split_indices(labels: list[int]) -> tuple[list[int], list[int]]:
    """Seeded, stratified 80/20 split of the digits (the same on every machine)."""
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    train, test = train_test_split(indices, test_size=TEST_SHARE, random_state=SPLIT_SEED, stratify=labels)
    return sorted(train), sorted(test)


def load_digits(split: Split, preprocessing: Preprocessing, canvas: bool = False) -> TensorImageDataset:
    """scikit-learn's 8×8 digits, resized to the model's input (or centred on a canvas) and normalised."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise MissingDependencyError("the digits data set comes with scikit-learn: pip install scikit-learn") from None
    bunch = sklearn_digits()
    labels = [int(v) for v in bunch.target]
    if split == "all":
        chosen = list(range(len(labels)))
    else:
        train, test = _digits_split_indices(labels)
        chosen = train if split == "train" else test
    channels, height, width = preprocessing.input_size
    images = torch.tensor(bunch.images[chosen], dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8) in [0, 1]
    images = place_on_canvas(images, height, width) if canvas else _resize(images, height, width)
    images = preprocessing.normalise(images.expand(-1, channels, -1, -1)).contiguous()
    name = DIGITS_CANVAS if canvas else DIGITS
    return TensorImageDataset(
        f"{name}/{split}", images, torch.tensor([labels[i] for i in chosen]), [str(d) for d in range(10)]
    )


def _resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False).clamp(0.0, 1.0)


def place_on_canvas(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 1, h, w) in [0, 1] → (N, 1, height, width): each image resized to 3/8 of the shorter side, centred on 0s."""
    side = max(1, round(min(height, width) * CANVAS_DIGIT_SHARE))
    top, left = (height - side) // 2, (width - side) // 2
    canvas = images.new_zeros(images.shape[0], images.shape[1], height, width)
    canvas[:, :, top : top + side, left : left + side] = _resize(images, side, side)
    return canvas


# -- image folders ------------------------------------------------------------------------
def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_by_class(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    folders = _class_folders(root)
    if not folders:
        raise VitPruneError(
            f"data folder {str(root)!r} has no class sub-folders; expected DIR/<class>/<image> (ImageFolder layout)"
        )
    samples = []
    for label, folder in enumerate(folders):
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        samples.extend((path, label) for path in files)
    if not samples:
        raise VitPruneError(
            f"data folder {str(root)!r} has class folders but no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return samples, [folder.name for folder in folders]


def _named_splits(root: Path) -> tuple[Path, Path] | None:
    test = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def load_folder(root: Path, split: Split, preprocessing: Preprocessing) -> FolderImageDataset:
    """An ImageFolder tree; ``DIR/train`` + ``DIR/val|test`` when present, else a seeded 80/20 split."""
    named = _named_splits(root)
    if named is not None:
        folder = named[0] if split == "train" else named[1]
        if split == "all":
            train, classes = _images_by_class(named[0])
            test, test_classes = _images_by_class(named[1])
            if test_classes != classes:
                raise VitPruneError(
                    f"{str(named[0])!r} and {str(named[1])!r} have different class folders; make them match"
                )
            return FolderImageDataset(f"{root.name}/all", train + test, classes, preprocessing)
        samples, classes = _images_by_class(folder)
        return FolderImageDataset(f"{root.name}/{folder.name}", samples, classes, preprocessing)
    samples, classes = _images_by_class(root)
    if split != "all":
        order = list(range(len(samples)))
        random.Random(SPLIT_SEED).shuffle(order)
        cut = max(1, round(len(order) * TEST_SHARE)) if len(order) > 1 else 0
        test_ids = set(order[:cut])
        samples = [s for i, s in enumerate(samples) if (i in test_ids) == (split == "test")]
    return FolderImageDataset(f"{root.name}/{split}", samples, classes, preprocessing)


def load_dataset(data: str | Path, split: Split, preprocessing: Preprocessing) -> ImageDataset:
    """``digits``, ``digits-canvas`` or an ImageFolder path → the ``split`` (train | test | all) as a Dataset."""
    if split not in ("train", "test", "all"):
        raise VitPruneError(f"split must be train, test or all, not {split!r}")
    if str(data) in (DIGITS, DIGITS_CANVAS):
        return load_digits(split, preprocessing, canvas=str(data) == DIGITS_CANVAS)
    root = Path(data)
    if not root.exists():
        raise VitPruneError(
            f"--data {str(data)!r} is neither 'digits', 'digits-canvas' nor an existing folder"
            f"{did_you_mean(str(data), (DIGITS, DIGITS_CANVAS))}; give an ImageFolder tree"
        )
    if not root.is_dir():
        raise VitPruneError(
            f"--data {str(data)!r} is a file; give 'digits', 'digits-canvas' or a folder DIR/<class>/<image>"
        )
    dataset = load_folder(root, split, preprocessing)
    if len(dataset) == 0:
        raise VitPruneError(f"the {split} split of {str(data)!r} holds no images; add images or use another folder")
    return dataset


def check_classes(dataset: ImageDataset, model: torch.nn.Module) -> None:
    """The model's head must have at least as many outputs as the data set has classes."""
    outputs = int(getattr(model, "num_classes", 0) or 0)
    if outputs and dataset.num_classes > outputs:
        raise VitPruneError(
            f"{dataset.name} has {dataset.num_classes} classes but the model predicts {outputs}; "
            f"fine-tune a model with num_classes={dataset.num_classes} first ('vitprune finetune')"
        )


def data_loader(
    dataset: ImageDataset, batch_size: int, shuffle: bool = False, seed: int = 0
) -> torch.utils.data.DataLoader:
    """A single-process loader (a seeded shuffle when asked)."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0
    )


__all__ = [
    "DIGITS",
    "DIGITS_CANVAS",
    "ImageDataset",
    "Preprocessing",
    "check_classes",
    "data_loader",
    "load_dataset",
    "load_digits",
    "load_folder",
    "place_on_canvas",
]
