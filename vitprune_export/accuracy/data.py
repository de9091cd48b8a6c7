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
* a folder — an ImageFolder tree (``DIR/<class>/<image>``), read with PIL and
  transformed by timm's transform factory with the model's data config
  (input size, mean/std, interpolation, crop percentage): the evaluation
  transform (resize, centre crop, normalise) for evaluation, the training
  transform (random resized crop, flip, colour jitter) for fine-tuning. When
  ``DIR/train`` and ``DIR/val`` (or ``DIR/test``) both exist they are the
  splits; otherwise the images are split 80/20 with a fixed seed. ImageNet's
  class folders (``val/n01440764/…``) are such a tree: sorted synset folders
  give timm's ImageNet class indices.
* ImageNet's validation images as distributed (``val/ILSVRC2012_val_*.JPEG``,
  no class folders) with Kaggle's ``LOC_val_solution.csv`` in the folder or
  beside it: the label of each image is its synset's index among the sorted
  synsets of the CSV.

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
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: str = "center"

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> Preprocessing:
        """timm's data config of ``model`` (``resolve_data_config``), at the model's own input size.

        Mean/std come from the config only when the model declares them (pretrained timm models do)."""
        from .._compat import import_timm
        from ..pruning.models import input_size_of

        import_timm()
        from timm.data import resolve_data_config

        config = resolve_data_config({}, model=model)
        declared = getattr(model, "pretrained_cfg", None) or {}
        channels = input_size_of(model)[0]
        # timm falls back to ImageNet's statistics; a model that declares none (the tiny ViT) keeps 0.5
        mean = config["mean"] if "mean" in declared else (0.5,) * channels
        std = config["std"] if "std" in declared else (0.5,) * channels
        return cls(
            input_size_of(model),
            tuple(float(v) for v in mean)[:channels],
            tuple(float(v) for v in std)[:channels],
            str(config.get("interpolation", "bilinear")),
            float(config.get("crop_pct") or 1.0),
            str(config.get("crop_mode") or "center"),
        )

    def transform(self, training: bool = False):
        """timm's transform factory: evaluation (resize, centre crop, normalise) or training augmentation."""
        from .._compat import import_timm

        import_timm()
        from timm.data import create_transform

        return create_transform(
            input_size=self.input_size,
            is_training=training,
            interpolation=self.interpolation,
            mean=self.mean,
            std=self.std,
            crop_pct=self.crop_pct,
            crop_mode=self.crop_mode,
        )

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

    in_memory = True  # no loader processes needed

    def __init__(self, name: str, images: torch.Tensor, labels: torch.Tensor, classes: list[str]):
        self.name, self.images, self.labels, self.classes = name, images, labels, classes

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


class FolderImageDataset(ImageDataset):
    """Images read lazily from files with PIL; ``samples`` is a list of (path, label).

    ``training``: timm's training augmentation instead of its evaluation transform.
    """

    def __init__(
        self,
        name: str,
        samples: list[tuple[Path, int]],
        classes: list[str],
        preprocessing: Preprocessing,
        training: bool = False,
    ):
        self.name, self.samples, self.classes, self.preprocessing = name, samples, classes, preprocessing
        self.training = training
        self._transform = None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._transform is None:  # built in the loader process that reads
            self._transform = self.preprocessing.transform(self.training)
        path, label = self.samples[index]
        return load_image(path, self.preprocessing, self._transform), label


class ShardOfDataset(ImageDataset):
    """Every ``world_size``-th image of ``dataset`` from ``rank`` on: one process's share of an evaluation."""

    def __init__(self, dataset: ImageDataset, rank: int, world_size: int):
        self.dataset, self.indices = dataset, range(rank, len(dataset), world_size)
        self.name, self.classes = dataset.name, dataset.classes
        self.in_memory = getattr(dataset, "in_memory", False)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[self.indices[index]]


def load_image(path: Path, preprocessing: Preprocessing, transform=None) -> torch.Tensor:
    """One image file → a normalised (C, H, W) float tensor through ``transform`` (default: timm's evaluation one)."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow comes with matplotlib/timm
        raise MissingDependencyError("reading image folders needs Pillow: pip install pillow") from None
    transform = transform or preprocessing.transform(False)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB" if preprocessing.input_size[0] == 3 else "L")
    except OSError as error:
        raise VitPruneError(f"cannot read image {str(path)!r} ({error}); remove it or replace it") from None
    return transform(image)


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


def _image_files(folder: Path, recursive: bool = True) -> list[Path]:
    files = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in files if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _images_by_class(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    folders = _class_folders(root)
    if not folders:
        imagenet = _imagenet_validation(root)
        if imagenet is not None:
            return imagenet
        raise VitPruneError(
            f"data folder {str(root)!r} has no class sub-folders; expected DIR/<class>/<image> (ImageFolder "
            f"layout) or ImageNet's flat val/ images with {IMAGENET_SOLUTION} beside them"
        )
    samples = []
    for label, folder in enumerate(folders):
        samples.extend((path, label) for path in _image_files(folder))
    if not samples:
        raise VitPruneError(
            f"data folder {str(root)!r} has class folders but no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
            "add images or give another folder"
        )
    return samples, [folder.name for folder in folders]


IMAGENET_SOLUTION = "LOC_val_solution.csv"


def _imagenet_validation(root: Path) -> tuple[list[tuple[Path, int]], list[str]] | None:
    """ImageNet's flat validation folder labelled by Kaggle's ``LOC_val_solution.csv`` (in it or beside it).

    Each CSV row is ``ImageId,PredictionString`` whose first word is the synset; the class index is the
    synset's position among the sorted synsets, timm's ImageNet order. None when there is no CSV.
    """
    import csv

    solution = next((p for p in (root / IMAGENET_SOLUTION, root.parent / IMAGENET_SOLUTION) if p.is_file()), None)
    if solution is None:
        return None
    synset_of: dict[str, str] = {}
    with solution.open(newline="") as handle:
        for row in csv.DictReader(handle):
            try:
                synset_of[row["ImageId"]] = row["PredictionString"].split()[0]
            except (KeyError, IndexError, AttributeError):
                raise VitPruneError(
                    f"{str(solution)!r} is not ImageNet's solution file (rows 'ImageId,PredictionString' "
                    "with the synset first); fix or remove it"
                ) from None
    classes = sorted(set(synset_of.values()))
    index = {synset: label for label, synset in enumerate(classes)}
    files = _image_files(root, recursive=False)
    unlabelled = [p.name for p in files if p.stem not in synset_of]
    if unlabelled:
        raise VitPruneError(
            f"{len(unlabelled)} image(s) of {str(root)!r} are not in {str(solution)!r} (e.g. {unlabelled[0]}); "
            "remove them or use the matching solution file"
        )
    if not files:
        raise VitPruneError(f"{str(root)!r} holds no images next to {str(solution)!r}")
    return [(path, index[synset_of[path.stem]]) for path in files], classes


def _named_splits(root: Path) -> tuple[Path, Path] | None:
    test = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    return (root / "train", test) if (root / "train").is_dir() and test is not None else None


def load_folder(root: Path, split: Split, preprocessing: Preprocessing, training: bool = False) -> FolderImageDataset:
    """An ImageFolder tree; ``DIR/train`` + ``DIR/val|test`` when present, else a seeded 80/20 split.

    ``training``: the images go through timm's training augmentation.
    """
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
            return FolderImageDataset(f"{root.name}/all", train + test, classes, preprocessing, training)
        samples, classes = _images_by_class(folder)
        return FolderImageDataset(f"{root.name}/{folder.name}", samples, classes, preprocessing, training)
    samples, classes = _images_by_class(root)
    if split != "all":
        order = list(range(len(samples)))
        random.Random(SPLIT_SEED).shuffle(order)
        cut = max(1, round(len(order) * TEST_SHARE)) if len(order) > 1 else 0
        test_ids = set(order[:cut])
        samples = [s for i, s in enumerate(samples) if (i in test_ids) == (split == "test")]
    return FolderImageDataset(f"{root.name}/{split}", samples, classes, preprocessing, training)


def load_dataset(data: str | Path, split: Split, preprocessing: Preprocessing, training: bool = False) -> ImageDataset:
    """``digits``, ``digits-canvas`` or an image folder → the ``split`` (train | test | all) as a Dataset.

    ``training``: a folder's images get timm's training augmentation (the digits are used as they are).
    """
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
    dataset = load_folder(root, split, preprocessing, training)
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
    "ShardOfDataset",
    "check_classes",
    "data_loader",
    "load_dataset",
    "load_digits",
    "load_folder",
    "place_on_canvas",
]
