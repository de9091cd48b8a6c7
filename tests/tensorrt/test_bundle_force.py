"""``bundle -o DIR --force`` replaces a folder only when it holds a bundle (its ``bundle.json``); ``engines/``
or any other folder is refused in one line, exit 2, with nothing in it changed or removed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import tree_state
from vitprune_export.cli import app

TINY = "vitprune_tiny_patch4_32"


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    _, result = export_cache(TINY, "topk", rate=0.1)
    return result.path


def _bundle(*arguments):
    return CliRunner().invoke(app, ["bundle", *map(str, arguments), "--profile", "jetson-orin-nano"])


def _refused(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_force_refuses_an_engines_folder(tiny_onnx, tmp_path):
    engines = tmp_path / "engines"
    engines.mkdir()
    (engines / "model.onnx").write_bytes(b"weights the user keeps")
    (engines / "model.engine").write_bytes(b"an engine")
    before = tree_state(tmp_path)
    line = _refused(_bundle(tiny_onnx, "-o", engines, "--force"))
    assert "--force replaces only a bundle folder" in line and str(engines) in line
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize(
    "marker",
    [None, "{not json", json.dumps({"schema": "something else"}), json.dumps(["vitprune.bundle/1"])],
    ids=["no-marker", "bad-json", "other-schema", "not-an-object"],
)
def test_force_refuses_a_folder_without_a_bundle_marker(tiny_onnx, tmp_path, marker):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "thesis.md").write_text("months of work\n")
    if marker is not None:
        (folder / "bundle.json").write_text(marker)
    before = tree_state(tmp_path)
    _refused(_bundle(tiny_onnx, "-o", folder, "--force"))
    assert tree_state(tmp_path) == before


def test_force_refuses_a_link_to_a_bundle(tiny_onnx, tmp_path):
    real = tmp_path / "real"
    assert _bundle(tiny_onnx, "-o", real).exit_code == 0
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    before = tree_state(tmp_path)
    _refused(_bundle(tiny_onnx, "-o", link, "--force"))
    assert tree_state(tmp_path) == before and link.is_symlink()


def test_force_replaces_a_bundle(tiny_onnx, tmp_path):
    folder = tmp_path / "orin"
    assert _bundle(tiny_onnx, "-o", folder).exit_code == 0
    (folder / "stale.txt").write_text("from the last bundle\n")
    result = _bundle(tiny_onnx, "-o", folder, "--force")
    assert result.exit_code == 0, result.output
    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / "bundle.json").read_text())["schema"] == "vitprune.bundle/1"
