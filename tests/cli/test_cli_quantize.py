"""``vitprune quantize`` end to end on the tiny ViT, and its bad-input battery: a calibration folder that is
missing, empty, too small or has other classes than the model; plugin nodes; an unknown method; a file
already quantized; an output in the way without --force. Each: one ``error:`` line saying what to do,
exit 2, nothing written."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import tree_state
from tests.cli.test_bad_input import ACTIONS, _fill


def _image_tree(root, classes: int, per_class: int):
    from PIL import Image

    for label in range(classes):
        folder = root / f"class_{label:02d}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            Image.new("RGB", (40, 40), (label * 20, index * 30, 90)).save(folder / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    (root / "empty").mkdir()
    (root / "no_images" / "a").mkdir(parents=True)
    return {
        "empty_data": str(root / "empty"),
        "no_images": str(root / "no_images"),
        "few": str(_image_tree(root / "few", classes=2, per_class=3)),
        "eleven": str(_image_tree(root / "eleven", classes=11, per_class=2)),
        "ten": str(_image_tree(root / "ten", classes=10, per_class=2)),
        "calibration_root": str(root),
    }


@pytest.fixture(scope="module")
def quantized(inputs, tmp_path_factory):
    from typer.testing import CliRunner

    from vitprune_export.cli import app

    target = tmp_path_factory.mktemp("quantized") / "tiny_int8.onnx"
    result = CliRunner().invoke(app, ["quantize", inputs["onnx"], "--data", "digits", "--images", "16", "-o", target])
    assert result.exit_code == 0, result.output
    return str(target)


CASES = [
    ("data-missing", ["--data", "{root}/nowhere"], "nowhere"),
    ("data-empty", ["--data", "{empty_data}"], "{empty_data}"),
    ("data-no-images", ["--data", "{no_images}"], "no images"),
    ("data-too-few", ["--data", "{few}", "--images", "100"], "fewer than --images 100"),
    ("data-classes", ["--data", "{eleven}", "--images", "8"], "11 classes"),
    ("images-too-small", ["--images", "2"], "--images"),
    ("method-unknown", ["--method", "entrop"], "did you mean 'entropy'"),
    ("precision-unknown", ["--precision", "int4"], "precision"),
    ("output-in-the-way", ["-o", "{existing}.onnx"], "--force"),
    ("output-suffix", ["-o", "{root}/out.txt"], ".onnx"),
]


@pytest.mark.parametrize("arguments, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(cli, inputs, folders, arguments, fragment):
    values = {**inputs, **folders}
    arguments = ["quantize", inputs["onnx"], *(_fill(a, values) for a in arguments)]
    if "-o" not in arguments:
        arguments += ["-o", str(cli.work / "out.onnx")]
    _check_one_line_error(cli, values, arguments, _fill(fragment, values))


@pytest.mark.parametrize(
    "source, fragment",
    [("plugin_onnx", "--to standard"), ("foreign", "not written by vitprune"), ("missing", "does not exist")],
)
def test_bad_input_file(cli, inputs, folders, source, fragment):
    values = {**inputs, **folders}
    _check_one_line_error(cli, values, ["quantize", inputs[source], "-o", str(cli.work / "out.onnx")], fragment)


def test_an_already_quantized_file_is_refused(cli, inputs, folders, quantized):
    values = {**inputs, **folders}
    _check_one_line_error(cli, values, ["quantize", quantized, "-o", str(cli.work / "q.onnx")], "already quantized")


def _check_one_line_error(cli, values, arguments, fragment):
    before = tree_state(values["root"], values["calibration_root"], cli.work)
    result = cli(*arguments)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, Exception), result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    assert fragment in errors[0], errors[0]
    assert ACTIONS.search(errors[0].split(":", 1)[1]), f"says what is wrong but not what to do: {errors[0]}"
    assert tree_state(values["root"], values["calibration_root"], cli.work) == before


def test_quantize_writes_a_q_dq_file_calibrated_on_a_folder(cli, inputs, folders):
    from vitprune_export.record import PruningRecord

    target = cli.work / "tiny_int8.onnx"
    result = cli("quantize", inputs["onnx"], "--data", folders["ten"], "--images", "12", "-o", target, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["calibration"] == {"data": "ten/train", "images": 12, "method": "minmax"}
    record = PruningRecord.read(target)
    assert record.precision == "int8" and record.calibration == summary["calibration"]
    assert summary["quantized_nodes"] > 0
    assert sorted(p.name for p in cli.work.iterdir()) == ["tiny_int8.onnx"]
