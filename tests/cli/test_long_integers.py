"""An integer of over 4,300 digits (Python's ``int_max_str_digits``) in a schedule, a result or an ONNX file's
pruning record is bad input: one line, exit 2, nothing written — not a ``ValueError`` traceback."""

from __future__ import annotations

import pytest

from tests.cli.conftest import TINY_MODEL, foreign_onnx, tree_state

LONG = "7" * 5000


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "too many digits" in lines[0]
    return lines[0]


@pytest.fixture
def files(tmp_path):
    import onnx

    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "schedule.json").write_text('{"removed": [' + LONG + ", 1, 1, 1, 1, 1]}\n")
    (folder / "result.json").write_text('{"schema": "vitprune.result/1", "batch": ' + LONG + "}\n")
    model = onnx.load(str(foreign_onnx(folder / "crafted.onnx")))
    entry = model.metadata_props.add()
    entry.key, entry.value = "vitprune", '{"model": "x", "method": "topk", "macs": ' + LONG + "}"
    onnx.save(model, str(folder / "crafted.onnx"))
    return folder


@pytest.mark.parametrize(
    "arguments, names",
    [
        (["flops", "--model", TINY_MODEL, "--method", "topk", "--schedule", "{schedule.json}"], "schedule file"),
        (
            [
                "export",
                "--model",
                TINY_MODEL,
                "--weights",
                "random",
                "--method",
                "topk",
                "--schedule",
                "{schedule.json}",
            ],
            "schedule file",
        ),
        (["compare", "{result.json}"], "result.json"),
        (["rewrite", "{crafted.onnx}", "-o", "out.onnx", "--to", "plugins"], "pruning record"),
        (["profile", "{crafted.onnx}", "--backend", "ort-cpu", "-o", "out.json"], "pruning record"),
    ],
)
def test_a_long_integer_is_one_line_and_writes_nothing(cli, files, arguments, names):
    before = tree_state(cli.work, files)
    for path in files.iterdir():
        arguments = [part.replace("{" + path.name + "}", str(path)) for part in arguments]
    line = _one_line_error(cli(*arguments))
    assert names in line
    assert tree_state(cli.work, files) == before
