"""vitprune bench: the grid, resuming, --force, Ctrl-C keeping what is done, the noise flag (tiny model, few queries)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vitprune_export.cli import app
from vitprune_export.cli.bench_grid import parse_grid
from vitprune_export.errors import VitPruneError
from vitprune_export.measure import bench
from vitprune_export.measure.bench import BenchSettings, Variant, expand_grid, is_noisy, paired_noise
from vitprune_export.measure.compare import build_comparison, render_markdown
from vitprune_export.measure.results import load_results

TINY = "vitprune_tiny_patch4_32"


def test_grid_adds_the_baseline_once_and_gives_threads_to_cpu_backends_only():
    cells = expand_grid(
        ["m1", "m2"], ["topk", "tome", "topk"], [0.06, 0.1], [], ["ort-cpu", "torch-cuda"], [1, 8], [1, 2]
    )
    variants = list(dict.fromkeys(cell.variant for cell in cells))
    assert variants[0] == Variant("m1", "none") and variants[5] == Variant("m2", "none")
    assert len(variants) == 2 * (1 + 2 * 2)  # per model: none + 2 methods × 2 rates
    ort = [cell for cell in cells if cell.backend == "ort-cpu"]
    cuda = [cell for cell in cells if cell.backend == "torch-cuda"]
    assert len(ort) == len(variants) * 2 * 2  # batches × threads
    assert len(cuda) == len(variants) * 2 and {cell.threads for cell in cuda} == {None}
    assert len(set(cells)) == len(cells)


def test_grid_takes_schedule_files_beside_rates(tmp_path):
    schedule = tmp_path / "s.json"
    cells = expand_grid(["m"], ["none", "topk"], [0.06], [schedule], ["ort-cpu"], [1], [None])
    assert [cell.variant for cell in cells] == [
        Variant("m", "none"),
        Variant("m", "topk", rate=0.06),
        Variant("m", "topk", schedule=schedule),
    ]


def test_noise_flag_compares_the_spread_with_the_difference():
    assert is_noisy(spread=3.0, difference=-2.0) and not is_noisy(spread=1.0, difference=-2.0)
    base = [[10.0] * 3] * 4
    clear = paired_noise([[8.0] * 3, [8.1] * 3, [7.9] * 3, [8.0] * 3], base)  # −20 % every round
    assert clear["delta_pct"] == pytest.approx(-20.0) and clear["rounds"] == 4 and not clear["noisy"]
    drift = paired_noise([[9.0] * 3, [11.0] * 3, [8.5] * 3, [11.5] * 3], base)  # ±10–15 % round to round
    assert abs(drift["delta_pct"]) < drift["spread_pct"] and drift["noisy"]


def test_compare_greys_noisy_deltas_and_keeps_thread_columns_apart(tmp_path):
    from tests.measure.test_compare import latency  # the hand-made results of the compare tests

    results = []
    for threads, (base, pruned, noisy) in {1: (100.0, 80.0, False), 2: (60.0, 58.0, True)}.items():
        for method, median in (("none", base), ("topk", pruned)):
            result = dict(latency(method, median), threads=threads)
            if method == "topk":
                result["noise"] = {"baseline": "none", "delta_pct": 0, "spread_pct": 0, "noisy": noisy}
            results.append(result)
    comparison = build_comparison(results)
    assert [column.label for column in comparison.columns] == ["cpu-2core ort-cpu b1 1t", "cpu-2core ort-cpu b1 2t"]
    text = render_markdown(comparison)
    assert "80.00 (−20.0%) |" in text and "58.00 (−3.3%)† |" in text
    assert "within the noise" in text
    assert "†" not in render_markdown(build_comparison(results, baseline="topk"))  # noise against 'none' only


def _settings(folder: Path, **changes) -> BenchSettings:
    return BenchSettings(output=folder, **{"warmup": 1, "iterations": 4, "chunk": 2, **changes})


def _grid():
    return parse_grid(TINY, "none,topk,tome", "0.1", None, "torch-cpu", "1", "1,2")


def _mtimes(folder: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in folder.rglob("*.json")}


def test_bench_writes_one_result_per_cell_then_resumes_and_force_redoes(tmp_path):
    cells = _grid()
    report = bench.run_bench(cells, _settings(tmp_path))
    assert len(report.written) == len(cells) == 6 and not report.skipped_done
    names = sorted(path.name for path in report.written)
    assert f"{TINY}_topk_r0.1_torch-cpu_b1_t2.json" in names and f"{TINY}_none_r0_torch-cpu_b1_t1.json" in names
    results = load_results([tmp_path])
    pruned = [result for result in results if result["method"] != "none"]
    assert all(result["iterations"] == 4 and result["threads"] in (1, 2) for result in results)
    assert all(result["settings"]["threads"] == result["threads"] for result in results)
    assert all(result["noise"]["rounds"] == 2 and "noisy" in result["noise"] for result in pruned)
    assert all("noise" not in result for result in results if result["method"] == "none")
    assert all(result["settings"]["chosen_by"].startswith("the group's baseline") for result in pruned)

    before = _mtimes(tmp_path)
    again = bench.run_bench(cells, _settings(tmp_path))
    assert not again.written and len(again.skipped_done) == 6 and _mtimes(tmp_path) == before

    forced = bench.run_bench(cells, _settings(tmp_path, force=True))
    assert len(forced.written) == 6
    assert all(_mtimes(tmp_path)[name] > before[name] for name in before)


def test_a_result_measured_otherwise_is_measured_again(tmp_path):
    cells = _grid()
    bench.run_bench(cells, _settings(tmp_path))
    results = load_results([tmp_path])
    assert all(len(result["fingerprint"]["hash"]) == 16 for result in results)
    assert {result["fingerprint"]["of"]["iterations"] for result in results} == {4}

    more = bench.run_bench(cells, _settings(tmp_path, iterations=6))  # same names, other iterations
    assert len(more.written) == len(more.remeasured) == 6 and not more.skipped_done
    assert {result["iterations"] for result in load_results([tmp_path])} == {6}

    edited = next(path for path in more.written if "_topk_" in path.name)
    data = json.loads(edited.read_text())
    data["fingerprint"]["hash"] = "0" * 16  # e.g. measured with other weights or another onnxruntime
    edited.write_text(json.dumps(data))
    again = bench.run_bench(cells, _settings(tmp_path, iterations=6))
    assert again.remeasured == [edited] and len(again.skipped_done) == 5


def test_one_bench_at_a_time_per_results_folder(tmp_path):
    from vitprune_export.files import folder_lock

    held = folder_lock(tmp_path, "vitprune bench")
    with held, pytest.raises(VitPruneError, match="is being written by vitprune bench \\(process \\d+\\)"):
        bench.run_bench(_grid(), _settings(tmp_path))
    assert not list(tmp_path.rglob("*.json"))
    report = bench.run_bench(_grid()[:1], _settings(tmp_path))  # the lock went with its holder
    assert len(report.written) == 1


def test_models_are_built_and_measured_one_at_a_time(tmp_path, monkeypatch):
    events = []
    build, measure = bench._build_variants, bench._measure_group

    def recording_build(cells, *args):
        models = {cell.variant.model for cell in cells}
        events.append(("build", models))
        return build(cells, *args) if models == {TINY} else ({}, {})

    def recording_measure(jobs, *args):
        events.append(("measure", {job.cell.variant.model for job in jobs}))
        return measure(jobs, *args)

    monkeypatch.setattr(bench, "_build_variants", recording_build)
    monkeypatch.setattr(bench, "_measure_group", recording_measure)
    cells = parse_grid(f"{TINY},vit_tiny_patch16_224", "none,topk", "0.1", None, "torch-cpu", "1", "1")
    bench.run_bench(cells, _settings(tmp_path))
    assert events == [("build", {TINY}), ("measure", {TINY}), ("build", {"vit_tiny_patch16_224"})]


def test_bench_interrupted_keeps_the_finished_groups_and_resumes_the_rest(tmp_path, monkeypatch):
    cells = _grid()
    measure_group = bench._measure_group
    calls = []

    def interrupted_second_group(jobs, *args):
        calls.append(jobs[0].cell.threads)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return measure_group(jobs, *args)

    monkeypatch.setattr(bench, "_measure_group", interrupted_second_group)
    report = bench.run_bench(cells, _settings(tmp_path))
    assert report.interrupted and len(report.written) == 3
    assert {json.loads(path.read_text())["threads"] for path in report.written} == {calls[0]}

    monkeypatch.setattr(bench, "_measure_group", measure_group)
    resumed = bench.run_bench(cells, _settings(tmp_path))
    assert not resumed.interrupted and len(resumed.skipped_done) == 3 and len(resumed.written) == 3
    assert {json.loads(path.read_text())["threads"] for path in resumed.written} == {2 if calls[0] == 1 else 1}


def test_cli_bench_skips_unavailable_backends_in_one_line_and_prints_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(
        bench, "unavailable_reason", lambda backend: "no CUDA GPU here" if backend != "torch-cpu" else None
    )
    arguments = ["bench", "-m", TINY, "--methods", "topk", "--rates", "0.1", "--backends", "torch-cpu,torch-cuda"]
    arguments += ["--threads", "1", "--iterations", "2", "--chunk", "1", "--warm-up", "0", "-o", str(tmp_path)]
    result = CliRunner().invoke(app, [*arguments, "--no-plot"])
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped torch-cuda: no CUDA GPU here") == 1
    assert "topk r0.1" in result.output and "2 cells: 2 measured, 0 already done" in result.output
    again = CliRunner().invoke(app, [*arguments, "--no-plot"])
    assert "2 cells: 0 measured, 2 already done" in again.output


def test_cli_bench_bad_grid_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["bench", "-m", TINY, "--threads", "0", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--threads: 0 is out of range" in result.output
    assert not any(tmp_path.iterdir())


def test_precisions_apply_to_the_onnx_backends_only():
    cells = expand_grid(["m"], ["none"], [], [], ["ort-cpu", "torch-cpu"], [1], [1], ["fp32", "int8"])
    assert sorted((cell.backend, cell.precision) for cell in cells) == [
        ("ort-cpu", "fp32"),
        ("ort-cpu", "int8"),
        ("torch-cpu", "fp32"),
    ]
    assert {cell.group[-1] for cell in cells} == {"fp32", "int8"}  # an INT8 cell pairs with the INT8 baseline


def test_an_int8_axis_measures_quantized_files_against_the_int8_baseline(tmp_path):
    cells = parse_grid(TINY, "none,topk", "0.1", None, "ort-cpu", "1", "1", "fp32,int8")
    report = bench.run_bench(cells, _settings(tmp_path))
    assert len(report.written) == 4 and not report.failed
    results = {(r["method"], r["precision"]): r for r in load_results([tmp_path])}
    assert set(results) == {("none", "fp32"), ("topk", "fp32"), ("none", "int8"), ("topk", "int8")}
    assert results[("topk", "int8")]["noise"]["rounds"] == 2
    assert sorted(path.name for path in (tmp_path / "onnx").glob("*int8.onnx")) == [
        f"{TINY}_none_r0_b1_int8.onnx",
        f"{TINY}_topk_r0.1_b1_int8.onnx",
    ]
    comparison = build_comparison(load_results([tmp_path]))
    assert sorted(column.precision for column in comparison.columns) == ["fp32", "int8"]
    again = bench.run_bench(cells, _settings(tmp_path))
    assert not again.written and len(again.skipped_done) == 4
