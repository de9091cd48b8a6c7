"""``compare``: hand-made results → Δ% per device, table/Markdown/CSV/JSON, plots, clear errors."""

from __future__ import annotations

import csv
import io
import json

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.measure.compare import build_comparison, render, render_markdown
from vitprune_export.measure.plots import plot_comparison
from vitprune_export.measure.results import SCHEMA, default_result_path, load_results, write_result

runner = CliRunner()
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BASE_MACS = 4_600_000_000


def latency(method, median, rate=0.06, device="cpu-2core", backend="ort-cpu", batch=1, macs=None, model="vit_s"):
    if method == "none":
        rate, macs = None, BASE_MACS
    return {
        "schema": SCHEMA,
        "kind": "latency",
        "model": model,
        "method": method,
        "method_options": {},
        "rate": rate,
        "keep_counts": [],
        "macs": macs,
        "baseline_macs": BASE_MACS,
        "weights": "random",
        "device": device,
        "backend": backend,
        "precision": "fp32",
        "batch": batch,
        "latency_ms": {
            "median": median,
            "mean": median,
            "p90": median,
            "p99": median,
            "std": 0.0,
            "min": median,
            "max": median,
        },
        "images_per_s": batch * 1000 / median,
        "warmup": 20,
        "iterations": 100,
        "environment": {},
        "created": "2026-11-21T00:00:00+00:00",
        "source": "hand-made",
    }


def accuracy(method, top1, rate=0.06, model="vit_s"):
    result = latency(method, 1.0, rate=rate, model=model)
    for key in ("latency_ms", "images_per_s", "warmup", "iterations"):
        result.pop(key)
    result.update(
        kind="accuracy",
        backend="torch-cpu",
        accuracy={"top1": top1, "dataset": "digits", "images": 360, "agreement": None, "reference_backend": None},
    )
    return result


@pytest.fixture
def table3(tmp_path):
    """Two devices, three methods (the shape of the VPA paper's Table 3), plus accuracies."""
    results = [
        latency("none", 46.51),
        latency("topk", 29.76, macs=2_300_000_000),
        latency("tome", 30.08, macs=2_300_000_000),
        latency("none", 8.35, device="h100", backend="torch-cuda"),
        latency("topk", 4.53, device="h100", backend="torch-cuda", macs=2_300_000_000),
        accuracy("none", 0.8432),
        accuracy("topk", 0.8015),
    ]
    folder = tmp_path / "results"
    for result in results:
        write_result(default_result_path(result, folder), result)
    (folder / "engine-metadata.json").write_text('{"model": "not a result"}')  # skipped in folders
    return folder


def test_delta_percent_per_device(table3):
    comparison = build_comparison(load_results([table3]))
    assert [c.label for c in comparison.columns] == ["cpu-2core ort-cpu b1", "h100 torch-cuda b1"]
    rows = {row.method: row for row in comparison.rows}
    assert [row.method for row in comparison.rows][0] == "none"
    cpu, gpu = comparison.columns
    assert rows["topk"].cells[cpu].delta_pct == pytest.approx(100 * (29.76 / 46.51 - 1))  # −36.0 %, as in Table 3
    assert rows["topk"].cells[gpu].delta_pct == pytest.approx(100 * (4.53 / 8.35 - 1))  # −45.7 %
    assert rows["topk"].flops_delta_pct == pytest.approx(-50.0)
    assert gpu not in rows["tome"].cells
    assert rows["topk"].accuracy == {"digits": pytest.approx(0.8015)}


def test_markdown_table_has_the_paper_shape(table3):
    text = render_markdown(build_comparison(load_results([table3])))
    lines = text.splitlines()
    assert lines[0] == "| method | GMACs | top-1 digits (%) | cpu-2core ort-cpu b1 (ms) | h100 torch-cuda b1 (ms) |"
    assert lines[2] == "| (none) | 4.60 | 84.32 | 46.51 | 8.35 |"
    assert lines[3] == "| topk r0.06 | 2.30 (−50.0%) | 80.15 | 29.76 (−36.0%) | 4.53 (−45.7%) |"
    assert lines[4] == "| tome r0.06 | 2.30 (−50.0%) | – | 30.08 (−35.3%) | – |"


def test_csv_and_json_carry_the_numbers(table3):
    comparison = build_comparison(load_results([table3]))
    rows = list(csv.DictReader(io.StringIO(render(comparison, "csv"))))
    topk = next(row for row in rows if row["method"] == "topk")
    assert float(topk["cpu-2core ort-cpu b1 delta_pct"]) == pytest.approx(-36.0129, abs=1e-3)
    assert float(topk["top1_digits"]) == pytest.approx(0.8015)
    data = json.loads(render(comparison, "json"))
    assert data["baseline"] == "none" and len(data["rows"]) == 3
    assert data["rows"][1]["latency"]["h100 torch-cuda b1"]["median_ms"] == 4.53


def test_another_baseline(table3):
    comparison = build_comparison(load_results([table3]), baseline="topk")
    tome = next(row for row in comparison.rows if row.method == "tome")
    assert tome.cells[comparison.columns[0]].delta_pct == pytest.approx(100 * (30.08 / 29.76 - 1))


def test_mixed_batch_sizes_in_one_column(tmp_path):
    results = [latency("none", 10.0), latency("topk", 7.0), latency("none", 300.0, batch=64)]
    with pytest.raises(
        VitPruneError,
        match="column 'cpu-2core ort-cpu fp32' mixes batch sizes 1, 64; compare one at a time with --batch N",
    ):
        build_comparison(results)
    comparison = build_comparison(results, batch=1)
    assert comparison.columns[0].batch == 1 and len(comparison.rows) == 2


def test_no_baseline(tmp_path):
    with pytest.raises(VitPruneError, match="no baseline: model 'vit_s' has no latency result for method 'none'"):
        build_comparison([latency("topk", 7.0)])


def test_plot_is_a_png(table3, tmp_path):
    path = plot_comparison(build_comparison(load_results([table3])), tmp_path / "plots" / "latency.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with pytest.raises(VitPruneError, match="ending in .png"):
        plot_comparison(build_comparison(load_results([table3])), tmp_path / "latency.jpg")


def test_cli_compare_table_and_plot(table3, tmp_path):
    plot = tmp_path / "fig.png"
    result = runner.invoke(app, ["compare", str(table3), "--plot", str(plot)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "29.76 (−36.0%)" in result.output and "(none)" in result.output
    assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_cli_compare_markdown_to_file(table3, tmp_path):
    output = tmp_path / "table.md"
    result = runner.invoke(app, ["compare", str(table3), "--format", "markdown", "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert "| topk r0.06 | 2.30 (−50.0%) |" in output.read_text()


def test_cli_compare_csv_on_stdout(table3):
    result = runner.invoke(app, ["compare", str(table3), "--format", "csv"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("model,method,rate,tag,macs,flops_delta_pct")


def _write(folder, *results):
    for index, result in enumerate(results):
        (folder / f"{index}.json").write_text(json.dumps(result))
    return folder


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: [str(d / "missing.json")], "does not exist"),
        (
            lambda d: [str(_write(d, latency("none", 10.0), latency("topk", 7.0), latency("topk", 70.0, batch=8)))],
            "mixes batch sizes 1, 8",
        ),
        (lambda d: [str(_write(d, latency("topk", 7.0)))], "no baseline"),
        (lambda d: [str(d)], "holds no vitprune result JSON"),
        (lambda d: [str(_write(d, {**latency("none", 1.0), "batch": "one"}) / "0.json")], "field 'batch' has type str"),
    ],
)
def test_cli_compare_bad_input_exits_2(tmp_path, make, message):
    result = runner.invoke(app, ["compare", *make(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_compare_bad_json_and_format(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = runner.invoke(app, ["compare", str(broken)])
    assert result.exit_code == 2 and "is not valid JSON" in result.output
    result = runner.invoke(app, ["compare", str(broken), "--format", "xlsx"])
    assert result.exit_code == 2 and "unknown --format 'xlsx'" in result.output


def test_cli_compare_reads_the_shipped_results_only_when_asked(tmp_path, monkeypatch):
    """Without arguments compare reads results/ of the working directory (what `vitprune profile` writes); the
    results shipped with vitprune come in with --references, read where the package keeps them, never written."""
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["compare"])
    assert missing.exit_code == 2 and "'results' does not exist" in missing.output and "--references" in missing.output
    shipped = runner.invoke(app, ["compare", "--references", "--format", "json"])
    assert shipped.exit_code == 0, shipped.output
    data = json.loads(shipped.stdout)
    assert {column["device"] for column in data["columns"]} == {"cpu-2core", "cpu-2core-1thread"}
    assert {row["method"] for row in data["rows"]} >= {"none", "topk", "tome", "topk-vpa"}
    assert list(tmp_path.iterdir()) == []
