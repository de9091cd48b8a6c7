"""``vitprune plan``: curves measured and cached per device, the schedule written and read back by export."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.measure.plan import CURVE_SCHEMA, PlanRequest, curves_path

runner = CliRunner()
TINY = ["--model", "vitprune_tiny_patch4_32", "--weights", "random"]
DEVICE = "testdev"


def invoke(*args):
    return runner.invoke(app, list(args))


def write_curves(root, method: str = "topk", backend: str = "ort-cpu") -> dict:
    """Synthetic curves of the tiny ViT (65 tokens, 1 prefix token, 6 blocks) as the cache would hold them."""
    tokens = [9, 24, 40, 56, 65]
    curves = {
        "schema": CURVE_SCHEMA,
        "model": "vitprune_tiny_patch4_32",
        "method": method,
        "backend": backend,
        "batch": 1,
        "tokens_in": 65,
        "num_prefix": 1,
        "depth": 6,
        "probe_share": 0.1,
        "max_remove": "half" if method == "tome" else "all",
        "curves": {
            "block": {"tokens": tokens, "ms": [0.1 + 0.01 * n for n in tokens]},
            "mlp": {"tokens": tokens, "ms": [0.05 + 0.006 * n for n in tokens]},
            "reduce": {"tokens": tokens, "ms": [0.12 + 0.0105 * n for n in tokens]},
        },
        "unpruned_ms": 0.5 + 6 * 0.75,
        "fixed_ms": 0.5,
    }
    request = PlanRequest(model="vitprune_tiny_patch4_32", method=method, backend=backend, results_root=root)
    path = curves_path(request, DEVICE)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(curves))
    return curves


def test_plan_from_cached_curves_writes_a_schedule_that_export_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_curves(tmp_path / "results")
    schedule = tmp_path / "plan.json"
    result = invoke(
        "plan",
        *TINY,
        "--method",
        "topk",
        "--device-name",
        DEVICE,
        "--speedup",
        "1.4",
        "--no-check",
        "-o",
        str(schedule),
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["curves_cached"] is True
    assert summary["predicted_ms"] <= 5.0 / 1.4 + 1e-9 and summary["predicted_speedup"] >= 1.4 - 1e-9
    data = json.loads(schedule.read_text())
    assert len(data["removed"]) == 6 and any(data["removed"])
    assert data["planned"]["budget"] == {"latency_ms": None, "speedup": 1.4}
    for tokens, removed in zip(data["tokens_in"], data["removed"]):
        assert removed <= 0.25 * tokens  # --max-rate 0.25
    exported = tmp_path / "planned.onnx"
    result = invoke("export", *TINY, "--method", "topk", "--schedule", str(schedule), "-o", str(exported), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["keep_counts"] == data["tokens_out"]
    result = invoke("flops", *TINY[:2], "--method", "topk", "--schedule", str(schedule))
    assert result.exit_code == 0, result.output
    assert " ".join(map(str, data["tokens_out"])) in result.stdout.replace("\n", " ")


def test_plan_human_output_and_tome_limits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_curves(tmp_path / "results", "tome")
    result = invoke(
        "plan",
        *TINY,
        "--method",
        "tome",
        "--device-name",
        DEVICE,
        "--latency-ms",
        "3.5",
        "--max-rate",
        "0.6",
        "--no-check",
    )
    assert result.exit_code == 0, result.output
    written = list((tmp_path / "results" / DEVICE / "plans").glob("*.json"))
    assert [path.name for path in written] == ["vitprune_tiny_patch4_32_tome_ort-cpu_b1_3.5ms.json"]
    data = json.loads(written[0].read_text())
    for tokens, removed in zip(data["tokens_in"], data["removed"]):
        assert removed <= (tokens - 1) // 2  # ToMe merges at most half the patch tokens
    assert "keep counts" in result.stdout and "predicted" in result.stdout
    assert "next: vitprune export" in result.stdout


def test_plan_sensitivity_from_adjust_rates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_curves(tmp_path / "results")
    adjusted = tmp_path / "adjusted.json"
    adjusted.write_text(json.dumps({"removed": [0] * 6, "rates": [0.3, 0.0, 0.0, 0.0, 0.0, 0.0]}))
    result = invoke(
        "plan", *TINY, "--method", "topk", "--device-name", DEVICE, "--speedup", "1.3", "--sensitivity", str(adjusted),
        "--no-check", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["weights"][0] < summary["weights"][1]
    assert summary["removed"][0] > 0  # the block the rate search pruned hardest is the first to lose tokens


def test_plan_measures_and_caches_curves_on_torch_cpu(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["plan", *TINY, "--method", "topk", "--backend", "torch-cpu", "--device-name", DEVICE, "--speedup", "1",
            "--points", "3", "--refine", "0", "--iterations", "3", "--warm-up", "1", "--json"]  # fmt: skip
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["curves_cached"] is False
    assert summary["measured_ms"] > 0 and summary["measured_unpruned_ms"] > 0
    curves = json.loads((tmp_path / summary["curves"]).read_text())
    assert curves["schema"] == CURVE_SCHEMA and curves["depth"] == 6 and curves["tokens_in"] == 65
    assert 0 <= curves["reduction_scale"] <= 2 and curves["calibration"]["measured_ms"] > 0
    for kind in ("block", "mlp", "reduce"):
        assert curves["curves"][kind]["tokens"] == [9, 40, 65]  # an eighth of the patches, the middle rounded to 8, all
        assert all(ms > 0 for ms in curves["curves"][kind]["ms"])
    schedule = tmp_path / summary["schedule"]
    written = schedule.read_bytes()
    refused = invoke(*args[:-1], "--no-check")  # the schedule is there: said before any measuring, nothing replaced
    assert refused.exit_code == 2 and "already exists; pass --force" in refused.output, refused.output
    assert schedule.read_bytes() == written
    again = invoke(*args[:-1], "--no-check", "--force", "--json")
    assert json.loads(again.stdout)["curves_cached"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--speedup", "1.5", "--latency-ms", "3"], "give one budget"),
        ([], "give one budget"),
        (["--speedup", "0.5"], "--speedup must be ≥ 1"),
        (
            ["--speedup", "1.5", "--backend", "trt"],
            "TensorRT curves are measured on the device: 'vitprune bundle ONNX --plan'",
        ),
        (["--speedup", "1.5", "--method", "none"], "keeps every token"),
        (["--speedup", "1.5", "--sensitivity", "missing.json"], "sensitivity file 'missing.json' does not exist"),
        (["--speedup", "1.5", "--max-rate", "1.5"], "--max-rate must be in (0, 1)"),
        (["--latency-ms", "0.2", "--device-name", DEVICE], "below the fastest plan"),
    ],
)
def test_plan_bad_input_is_one_line(tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    write_curves(tmp_path / "results")
    result = invoke("plan", *TINY, *(["--method", "topk"] if "--method" not in extra else []), *extra, "--no-check")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "results" / DEVICE / "plans").exists()


def test_the_next_line_quotes_a_schedule_path_with_a_space(tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)
    write_curves(tmp_path / "results", "tome")
    output = tmp_path / "my plans" / "x; y.json"
    arguments = ["--method", "tome", "--device-name", DEVICE, "--latency-ms", "3.5", "--max-rate", "0.6"]
    result = invoke("plan", *TINY, *arguments, "--no-check", "-o", str(output))
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("next: "))
    words = shlex.split(line[len("next: ") :])  # pasted into a shell, it is these words
    assert words[:2] == ["vitprune", "export"] and words[words.index("--schedule") + 1] == str(output)
