"""The CLI through typer's CliRunner: export, flops, methods, and the error contract."""

import json

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.export.onnx import read_metadata

runner = CliRunner()
TINY = ["--model", "vitprune_tiny_patch4_32", "--weights", "random"]


def invoke(*args):
    return runner.invoke(app, list(args))


def test_export_writes_checked_onnx_with_metadata(tmp_path):
    target = tmp_path / "tiny.onnx"
    result = invoke(
        "export",
        "--method",
        "topk-vpa",
        "--rate",
        "0.1",
        *TINY,
        "--dynamic-batch",
        "--tau",
        "0.01",
        "-o",
        str(target),
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["keep_counts"] == [59, 54, 49, 45, 41, 37]
    assert summary["parity_max_abs_diff"] <= 1e-4
    assert summary["parity_batches"] == [1, 3]
    assert 0 < summary["macs_ratio"] < 1
    metadata = read_metadata(target)
    assert metadata["method_options"] == {"tau": 0.01, "score": "cls-attn"}
    assert metadata["schedule"]["rates"] == [0.1] * 6


def test_export_human_output_ends_with_the_next_command(tmp_path):
    target = tmp_path / "tiny.onnx"
    result = invoke("export", "--method", "tome", "--rate", "0.1", *TINY, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert "keep counts" in result.stdout and "parity" in result.stdout
    assert f"vitprune profile {target}" in result.stdout.replace("\n", "")


def test_export_from_schedule_file(tmp_path):
    schedule = tmp_path / "schedule.json"
    schedule.write_text(json.dumps({"removed": [4, 4, 4, 4, 4, 4]}))
    target = tmp_path / "s.onnx"
    result = invoke("export", "--method", "topk", "--schedule", str(schedule), *TINY, "-o", str(target), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keep_counts"] == [61, 57, 53, 49, 45, 41]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "topkk", "--rate", "0.1"], "unknown method 'topkk' (did you mean 'topk'"),
        (["--method", "topk", "--rate", "1.5"], "--rate must be in [0, 1)"),
        (["--method", "topk", "--rate", "0.9"], "leaves no patch token"),
        (["--method", "topk", "--rates", "0.1,0.1"], "2 entries but the model has 6 blocks"),
        (["--method", "topk", "--rate", "0.1", "--tau", "1"], "method 'topk' does not take --tau"),
        (["--method", "topk", "--rate", "0.1", "--score", "cls-atn"], "did you mean 'cls-attn'"),
        (["--method", "topk", "--rate", "0.1", "--weights", "/nonexistent.pt"], "does not exist"),
        (["--method", "topk", "--rate", "0.1", "--schedule", "/nonexistent.json"], "does not exist"),
    ],
)
def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, args, message):
    target = tmp_path / "never.onnx"
    result = invoke(
        "export", *TINY[:2], *args, *(["--weights", "random"] if "--weights" not in args else []), "-o", str(target)
    )
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_unknown_model_suggests_near_miss(tmp_path):
    result = invoke(
        "export", "--model", "vit_smal_patch16_224", "--method", "topk", "--rate", "0.1", "-o", str(tmp_path / "x.onnx")
    )
    assert result.exit_code == 2
    assert "did you mean 'vit_small_patch16_224'" in result.output


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    result = invoke("export", "--method", "topk", "--rate", "0.1", *TINY, "-o", str(blocker / "sub" / "x.onnx"))
    assert result.exit_code == 2
    assert "cannot create folder" in result.output
    assert blocker.read_text() == "I am a file, not a folder"


def test_flops_reports_the_issue_numbers():
    result = invoke("flops", "--method", "topk", "--rate", "0.06", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert round(data["baseline_gmacs"], 1) == 4.6
    assert round(data["ratio"], 3) == 0.705
    assert data["keep_counts"][-1] == 98


def test_methods_lists_every_registered_method():
    from vitprune_export import list_methods

    result = invoke("methods", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list_methods()
    assert next(r for r in rows if r["name"] == "topk-vpa")["knobs"] == {"tau": 0.001, "score": "cls-attn"}


def test_help_needs_no_heavy_imports():
    import subprocess
    import sys

    code = (
        "import sys; from vitprune_export.cli import app; "
        "heavy = [m for m in ('tensorrt', 'onnx_graphsurgeon', 'matplotlib') if m in sys.modules]; "
        "print(heavy)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_readme_main_command_end_to_end(tmp_path, monkeypatch):
    """`vitprune export --method topk-vpa --rate 0.06`, exactly as the README types it, on the full
    12-block ViT-S/16: offline, it falls back to random weights, says so loudly, records it in the
    metadata, writes engines/… with the VPA paper's keep counts (197 → 98) and parity ≤ 1e-4."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("export", "--method", "topk-vpa", "--rate", "0.06")
    assert result.exit_code == 0, result.output
    assert "USING RANDOM WEIGHTS for vit_small_patch16_224" in result.output
    target = tmp_path / "engines" / "vit_small_patch16_224_topk-vpa_r0.06.onnx"
    assert target.is_file() and [p.name for p in target.parent.iterdir()] == [target.name]
    printed = " ".join(result.stdout.split())  # rich wraps long lines
    assert "keep counts (tokens after each block): 186 175 165 156 147 139 131 124 117 110 104 98" in printed
    metadata = read_metadata(target)
    assert metadata["model"] == "vit_small_patch16_224" and metadata["method"] == "topk-vpa"
    assert metadata["weights"].startswith("random")
    assert metadata["keep_counts"] == [186, 175, 165, 156, 147, 139, 131, 124, 117, 110, 104, 98]
    parity = float(printed.split("max |PyTorch − ONNX Runtime| = ")[1].split()[0])
    assert parity <= 1e-4


def test_plugin_nodes_flag_and_its_hidden_old_spelling(tmp_path):
    """`--plugin-nodes` (a switch; `--plugins` names a plugin library path in build and profile) writes plugin
    nodes; the old `--plugins` switch still does, unlisted."""
    shown = " ".join(invoke("export", "--help").output.split())
    assert "--plugin-nodes" in shown and "--plugins " not in shown
    for flag in ("--plugin-nodes", "--plugins"):
        target = tmp_path / f"{flag.strip('-')}.onnx"
        result = invoke("export", "--method", "topk", "--rate", "0.1", *TINY, flag, "-o", str(target), "--json")
        assert result.exit_code == 0, result.output
        metadata = read_metadata(target)
        assert metadata["plugins"] is True and metadata["method"] == "topk"
