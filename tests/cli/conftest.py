"""Inputs for the CLI tests, made once per session: a tiny exported ONNX file (with and without plugin
nodes) and the bad files a user hands a command by mistake."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

TINY_MODEL = "vitprune_tiny_patch4_32"


def foreign_onnx(path: Path) -> Path:
    """A valid ONNX model that vitprune did not write (no pruning record): one Relu on a 1×3×32×32 image."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["images"], ["logits"])],
        "foreign",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 32, 32])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


def no_graph_onnx(path: Path) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph([], "empty", [], [])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, export_cache) -> dict[str, str]:
    """Paths by name: ``onnx`` and ``plugin_onnx`` (tiny vitprune exports), ``foreign`` (an ONNX from another
    tool), and the bad ones: ``missing``, ``folder``, ``empty``, ``text``, ``no_graph``, ``engine``,
    ``engine_as_onnx``, ``blocker`` (a file where a folder is expected), ``bad_json``, ``toml``."""
    folder = tmp_path_factory.mktemp("inputs")
    _, exported = export_cache(TINY_MODEL, "topk", rate=0.1, dynamic_batch=False)
    _, with_plugins = export_cache(TINY_MODEL, "topk", rate=0.1, dynamic_batch=False, plugins=True)
    (folder / "a folder").mkdir()
    (folder / "empty.onnx").write_bytes(b"")
    (folder / "text.onnx").write_text("not an ONNX file\n")
    (folder / "model.engine").write_bytes(b"ftrt" + bytes(252))
    (folder / "engine.onnx").write_bytes(b"vtrt" + bytes(252))
    (folder / "blocker").write_text("a file, not a folder\n")
    (folder / "bad.json").write_text("{not json")
    (folder / "list.json").write_text("[1, 2, 3]\n")
    (folder / "result.json").write_text('{"schema": "something else"}\n')
    (folder / "bad.toml").write_text("this is = = not toml\n")
    (folder / "existing.onnx").write_bytes(b"keep me")
    (folder / "existing.png").write_bytes(b"keep me")
    (folder / "existing.md").write_text("keep me\n")
    (folder / "existing.json").write_text("keep me\n")
    (folder / "existing.engine").write_bytes(b"keep me")
    return {
        "onnx": str(exported.path),
        "plugin_onnx": str(with_plugins.path),
        "foreign": str(foreign_onnx(folder / "foreign.onnx")),
        "no_graph": str(no_graph_onnx(folder / "no_graph.onnx")),
        "missing": str(folder / "missing.onnx"),
        "folder": str(folder / "a folder"),
        "empty": str(folder / "empty.onnx"),
        "text": str(folder / "text.onnx"),
        "engine": str(folder / "model.engine"),
        "engine_as_onnx": str(folder / "engine.onnx"),
        "blocker": str(folder / "blocker"),
        "under_blocker": str(folder / "blocker" / "sub" / "out"),
        "bad_json": str(folder / "bad.json"),
        "list_json": str(folder / "list.json"),
        "foreign_result": str(folder / "result.json"),
        "bad_toml": str(folder / "bad.toml"),
        "existing": str(folder / "existing"),
        "root": str(folder),
    }


def tree_state(*folders: str | Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folders`` with its size and modification time: what a failed command must not change."""
    state = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(root, name)
                info = os.lstat(path)
                state[path] = (info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """``cli(*args)`` → click Result, run in an empty working directory at 80 columns."""
    from vitprune_export.cli import app

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("COLUMNS", "80")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args])

    invoke.work = work
    return invoke
