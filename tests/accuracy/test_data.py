"""Data sets for eval/finetune: bundled digits and ImageFolder trees."""

from __future__ import annotations

import pytest
import torch

from vitprune_export.accuracy.data import Preprocessing, check_classes, load_dataset
from vitprune_export.errors import VitPruneError

TINY = Preprocessing((3, 32, 32))


def test_digits_split_is_fixed_disjoint_and_stratified():
    train, test = load_dataset("digits", "train", TINY), load_dataset("digits", "test", TINY)
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 3, 32, 32) and test.images.shape == (360, 3, 32, 32)
    assert train.num_classes == test.num_classes == 10
    counts = torch.bincount(test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified 20 % of ~180 per class
    again = load_dataset("digits", "test", TINY)
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    # no test image is also a training image
    train_rows = {tuple(row.tolist()) for row in train.images[:, 0, ::4, ::4].reshape(len(train), -1)}
    shared = sum(tuple(row.tolist()) in train_rows for row in test.images[:, 0, ::4, ::4].reshape(len(test), -1))
    assert shared <= 3  # a few digits are pixel-identical duplicates in the source data


def test_digits_are_normalised_with_the_model_statistics():
    images = load_dataset("digits", "test", TINY).images
    assert images.min() >= -1.0 - 1e-6 and images.max() <= 1.0 + 1e-6
    assert torch.equal(images[:, 0], images[:, 2])  # grey: the channel is repeated
    other = load_dataset("digits", "test", Preprocessing((1, 16, 16), mean=(0.0,), std=(1.0,))).images
    assert other.shape[1:] == (1, 16, 16) and other.min() >= 0.0 and other.max() <= 1.0


def test_digits_canvas_centres_the_resized_digit_on_background():
    raw = Preprocessing((1, 32, 32), mean=(0.0,), std=(1.0,))
    canvas = load_dataset("digits-canvas", "test", raw)
    plain = load_dataset("digits", "test", Preprocessing((1, 12, 12), mean=(0.0,), std=(1.0,)))
    assert canvas.name == "digits-canvas/test" and torch.equal(canvas.labels, plain.labels)
    # 12 = round(3/8 · 32) pixels, centred: rows and columns 10..21 hold the digit, the rest is 0
    assert torch.equal(canvas.images[:, :, 10:22, 10:22], plain.images)
    outside = canvas.images.clone()
    outside[:, :, 10:22, 10:22] = 0
    assert outside.abs().max() == 0
    # with the model's normalisation the background is (0 − 0.5) / 0.5 in every channel
    normalised = load_dataset("digits-canvas", "test", TINY).images
    assert torch.all(normalised[:, :, :10, :] == -1.0) and normalised.shape == (360, 3, 32, 32)


def _write_folder(root, classes=("cat", "dog"), per_class=5, size=(12, 9)):
    from PIL import Image

    for index, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for image in range(per_class):
            Image.new("RGB", size, (255 * index, 40 * image, 0)).save(folder / f"{image}.png")


def test_image_folder_split_resize_and_labels(tmp_path):
    _write_folder(tmp_path / "pets", per_class=10)
    train = load_dataset(tmp_path / "pets", "train", TINY)
    test = load_dataset(tmp_path / "pets", "test", TINY)
    assert train.classes == ["cat", "dog"] and len(train) + len(test) == 20 and len(test) == 4
    assert {path for path, _ in train.samples}.isdisjoint(path for path, _ in test.samples)
    image, label = test[0]
    assert image.shape == (3, 32, 32) and label in (0, 1)
    red = 1.0 if label == 1 else -1.0  # dog images are pure red in channel 0: (1 − 0.5) / 0.5
    assert torch.allclose(image[0], torch.full((32, 32), red))


def test_image_folder_named_splits(tmp_path):
    _write_folder(tmp_path / "data" / "train", per_class=3)
    _write_folder(tmp_path / "data" / "val", per_class=2)
    assert len(load_dataset(tmp_path / "data", "train", TINY)) == 6
    assert len(load_dataset(tmp_path / "data", "test", TINY)) == 4
    assert len(load_dataset(tmp_path / "data", "all", TINY)) == 10


def test_a_misspelt_digits_name_gets_the_near_miss():
    with pytest.raises(VitPruneError, match="did you mean 'digits-canvas'"):
        load_dataset("digits-canva", "test", TINY)


@pytest.mark.parametrize(
    "layout, fragment",
    [
        ("missing", "neither 'digits', 'digits-canvas' nor an existing folder"),
        ("file", "is a file"),
        ("empty", "has no class sub-folders"),
        ("no-images", "has class folders but no images"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path, layout, fragment):
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout == "empty":
        root.mkdir()
    elif layout == "no-images":
        (root / "cat").mkdir(parents=True)
        (root / "cat" / "notes.txt").write_text("x")
    with pytest.raises(VitPruneError, match=fragment):
        load_dataset(root, "test", TINY)


def test_more_classes_than_outputs_is_an_error(tmp_path):
    _write_folder(tmp_path / "data", classes=("a", "b", "c"))
    dataset = load_dataset(tmp_path / "data", "all", TINY)
    model = torch.nn.Module()
    model.num_classes = 2
    with pytest.raises(VitPruneError, match="has 3 classes but the model predicts 2"):
        check_classes(dataset, model)


def test_model_preprocessing_is_timms_data_config_at_the_models_size():
    from vitprune_export.pruning.models import create_model

    model = create_model("vitprune_tiny_patch4_32", "random", seed=0)
    preprocessing = Preprocessing.for_model(model)
    assert preprocessing.input_size == (3, 32, 32)  # the model's own size, not timm's 224 default
    assert (preprocessing.interpolation, preprocessing.crop_pct) == ("bicubic", 0.875)
    steps = [type(step).__name__ for step in preprocessing.transform(False).transforms]
    assert steps[:2] == ["Resize", "CenterCrop"]
    assert type(preprocessing.transform(True).transforms[0]).__name__ == "RandomResizedCropAndInterpolation"


def test_training_folders_are_augmented_evaluation_folders_are_not(tmp_path):
    from PIL import Image

    (tmp_path / "data" / "a").mkdir(parents=True)
    gradient = Image.linear_gradient("L").convert("RGB").resize((40, 40))
    gradient.save(tmp_path / "data" / "a" / "0.png")
    plain = load_dataset(tmp_path / "data", "all", TINY)
    augmented = load_dataset(tmp_path / "data", "all", TINY, training=True)
    assert torch.equal(plain[0][0], plain[0][0])
    torch.manual_seed(0)
    draws = [augmented[0][0] for _ in range(4)]
    assert draws[0].shape == (3, 32, 32)
    assert any(not torch.equal(draws[0], other) for other in draws[1:])


def test_imagenet_flat_validation_folder_with_the_solution_csv(tmp_path):
    from PIL import Image

    val = tmp_path / "val"
    val.mkdir()
    rows = ["ImageId,PredictionString"]
    for index, synset in enumerate(["n02", "n01", "n02"]):
        Image.new("RGB", (8, 8), (index * 100, 0, 0)).save(val / f"ILSVRC2012_val_{index:08d}.JPEG")
        rows.append(f"ILSVRC2012_val_{index:08d},{synset} 1 2 3 4")
    (tmp_path / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    dataset = load_dataset(val, "all", TINY)
    assert dataset.classes == ["n01", "n02"]
    assert [label for _, label in dataset.samples] == [1, 0, 1]
    Image.new("RGB", (8, 8)).save(val / "stray.JPEG")
    with pytest.raises(VitPruneError, match=r"1 image\(s\) of .* are not in .*LOC_val_solution.csv"):
        load_dataset(val, "all", TINY)
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,Other\nx,y\n")
    with pytest.raises(VitPruneError, match="is not ImageNet's solution file"):
        load_dataset(val, "all", TINY)
