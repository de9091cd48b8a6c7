"""Profiling: statistics, the results JSON schema, and the ``vitprune profile`` command."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from tests.helpers import base_model
from vitprune_export import apply_method
from vitprune_export.cli import app
from vitprune_export.errors import VitPruneError
from vitprune_export.measure.profile import latency_stats, profile
from vitprune_export.measure.results import LATENCY_STATS, SCHEMA, load_result, validate_result, write_result
from vitprune_export.measure.runners import get_runner

TINY = "vitprune_tiny_patch4_32"
runner = CliRunner()


def check_latency_result(result: dict, batch: int, iterations: int) -> None:
    validate_result(result)
    stats = result["latency_ms"]
    assert set(stats) >= set(LATENCY_STATS)
    assert all(stats[name] > 0 for name in ("median", "mean", "p90", "p99", "min", "max"))
    assert stats["min"] <= stats["median"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["min"] <= stats["mean"] <= stats["max"] and stats["std"] >= 0
    assert result["images_per_s"] == pytest.approx(batch * 1000 / stats["median"])
    assert (result["batch"], result["iterations"], result["schema"], result["kind"]) == (
        batch,
        iterations,
        SCHEMA,
        "latency",
    )
    environment = result["environment"]
    assert environment["cpu_cores"] >= 1 and environment["threads"] >= 1 and environment["cpu"]
    assert "torch" in environment["libraries"] and "onnxruntime" in environment["libraries"]


def test_latency_stats_of_known_samples():
    stats = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (stats["median"], stats["mean"], stats["min"], stats["max"]) == (3.0, 22.0, 1.0, 100.0)
    assert stats["p90"] == pytest.approx(61.6) and stats["p99"] == pytest.approx(96.16)
    with pytest.raises(VitPruneError, match="no timed iterations"):
        latency_stats([])


def test_profile_torch_cpu_result_is_consistent():
    network = apply_method(base_model(TINY), "evit", rate=0.1)
    result = profile(get_runner("torch-cpu"), network, batch=2, warmup=2, iterations=7, model_name=TINY, progress=False)
    check_latency_result(result, batch=2, iterations=7)
    assert (result["model"], result["method"], result["rate"], result["backend"]) == (TINY, "evit", 0.1, "torch-cpu")
    assert result["keep_counts"][-1] < 65 and result["macs"] < result["baseline_macs"]
    assert result["device"].startswith("cpu-") and result["device"].endswith("core")


def test_cli_profile_model_spec_writes_the_result(tmp_path):
    output = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "profile",
            "--backend",
            "torch-cpu",
            "--model",
            TINY,
            "--method",
            "topk",
            "--rate",
            "0.1",
            "--warmup",
            "1",
            "--iters",
            "5",
            "--device-name",
            "ci",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    # next: measures the missing baseline first, then compares
    assert (
        "wrote" in result.output
        and "next: vitprune profile" in result.output
        and "&& vitprune compare" in result.output
    )
    data = load_result(output)
    check_latency_result(data, batch=1, iterations=5)
    assert (data["model"], data["method"], data["rate"], data["device"]) == (TINY, "topk", 0.1, "ci")
    hint = next(line for line in result.output.splitlines() if line.startswith("next: vitprune profile"))
    assert f"--threads {data['settings']['threads']}" in hint  # the baseline is measured as this run was


def test_old_flag_spellings_stay_as_hidden_aliases():
    """--warmup/--iters (the spellings before Polygraphy's and trtexec's --warm-up/--iterations) still work, unlisted."""
    shown = runner.invoke(app, ["profile", "--help"], terminal_width=200).output
    assert "--warm-up" in shown and "--iterations" in shown
    assert "--warmup" not in shown and "--iters " not in shown
    result = runner.invoke(
        app, ["profile", "--backend", "torch-cpu", "--model", TINY, "--iterations", "3", "--iters", "4"]
    )
    assert result.exit_code == 2 and "--iterations and --iters are the same option" in " ".join(result.output.split())


def test_cli_profile_onnx_on_ort_cpu_default_path(export_cache, tmp_path, monkeypatch):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app,
        [
            "profile",
            str(exported.path),
            "--backend",
            "ort-cpu",
            "--batch",
            "2",
            "--warm-up",
            "1",
            "--iterations",
            "4",
            "--threads",
            "1",
            "--device-name",
            "ci box",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    expected = tmp_path / "results/ci-box/vitprune_tiny_patch4_32_topk_r0.1_ort-cpu_b2.json"
    assert printed["path"] == str(expected.relative_to(tmp_path))
    data = load_result(expected)
    check_latency_result(data, batch=2, iterations=4)
    assert data["keep_counts"] == exported.keep_counts and data["environment"]["threads"] == 1


def test_cli_profile_onnx_on_torch_cpu_rebuilds_from_metadata(export_cache, tmp_path):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    output = tmp_path / "t.json"
    result = runner.invoke(
        app,
        [
            "profile",
            str(exported.path),
            "--backend",
            "torch-cpu",
            "--warm-up",
            "0",
            "--iterations",
            "2",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    data = load_result(output)
    assert (data["model"], data["method"], data["rate"], data["keep_counts"]) == (
        TINY,
        "topk",
        0.1,
        exported.keep_counts,
    )


def test_cli_profile_model_spec_on_ort_cpu_exports_it_first(tmp_path):
    """The baseline for `compare` on ONNX Runtime needs no separate export: the spec becomes a temporary ONNX file."""
    output = tmp_path / "none.json"
    result = runner.invoke(
        app,
        [
            "profile",
            "--backend",
            "ort-cpu",
            "--model",
            TINY,
            "--method",
            "none",
            "--warm-up",
            "1",
            "--iterations",
            "3",
            "--threads",
            "1",
            "--device-name",
            "ci",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    data = load_result(output)
    check_latency_result(data, batch=1, iterations=3)
    assert (data["model"], data["method"], data["backend"], data["keep_counts"]) == (TINY, "none", "ort-cpu", [65] * 6)
    assert data["macs"] == data["baseline_macs"] > 0
    assert data["weights"] == "random (seed 0)"
    assert list(tmp_path.iterdir()) == [output]  # the temporary ONNX file is gone


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--backend", "trt"], "needs a TARGET: an engine file"),
        (["--backend", "ort-cpu", "--model", TINY, "--method", "topk", "--rate", "0.95"], "leaves no patch token"),
        (["missing.onnx", "--backend", "ort-cpu"], "TARGET 'missing.onnx' does not exist"),
        (["--backend", "ort-cpux"], "did you mean 'ort-cpu'"),
        (["--backend", "torch-cpu", "--model", TINY, "--method", "topkk"], "unknown method 'topkk'"),
        (["--backend", "ort-cpu", "--plugins", "x.so", "a.onnx"], "--plugins is for --backend trt only"),
    ],
)
def test_cli_profile_bad_input_exits_2(arguments, message):
    result = runner.invoke(app, ["profile", *arguments])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_cli_profile_file_and_spec_together_exit_2(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"x")
    result = runner.invoke(app, ["profile", str(target), "--method", "topk"])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(app, ["profile", str(target), "--backend", "trt"])
    assert result.exit_code == 2 and "build one first: vitprune build" in result.output


def _valid_result() -> dict:
    return {
        "schema": SCHEMA,
        "kind": "latency",
        "model": "m",
        "method": "none",
        "method_options": {},
        "rate": None,
        "keep_counts": [],
        "macs": 10,
        "baseline_macs": 10,
        "weights": "random",
        "device": "d",
        "backend": "ort-cpu",
        "precision": "fp32",
        "batch": 1,
        "latency_ms": {"median": 2.0, "mean": 2.0, "p90": 2.5, "p99": 3.0, "std": 0.1, "min": 1.0, "max": 3.0},
        "images_per_s": 500.0,
        "warmup": 1,
        "iterations": 5,
        "environment": {},
        "created": "2026-01-01T00:00:00+00:00",
        "source": "t",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("device"), "missing field 'device'"),
        (lambda r: r.update(schema="other/1"), "not a vitprune result"),
        (lambda r: r.update(backend="gpu"), "backend 'gpu' is not one of"),
        (lambda r: r["latency_ms"].update(median=9.0), "min ≤ median ≤ max fails"),
        (lambda r: r.update(batch=0), "batch must be ≥ 1"),
        (
            lambda r: r.update(kind="accuracy", accuracy={"top1": 80.1, "dataset": "d", "images": 5}),
            "fraction in [0, 1]",
        ),
    ],
)
def test_validate_result_names_the_problem(change, message):
    data = copy.deepcopy(_valid_result())
    change(data)
    with pytest.raises(VitPruneError, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate_result(data, "f.json")


def test_write_result_leaves_nothing_when_invalid(tmp_path):
    data = _valid_result()
    data["latency_ms"]["min"] = -1
    with pytest.raises(VitPruneError):
        write_result(tmp_path / "r.json", data)
    assert list(tmp_path.iterdir()) == []
    write_result(tmp_path / "ok.json", _valid_result())
    assert load_result(tmp_path / "ok.json")["model"] == "m"


def test_cli_profile_takes_onnx_runtime_settings_and_hints_the_baseline_with_them(export_cache, tmp_path):
    _, exported = export_cache(TINY, "topk", rate=0.1)
    output = tmp_path / "pruned" / "r.json"
    arguments = ["profile", str(exported.path), "--backend", "ort-cpu", "--warm-up", "1", "--iterations", "3"]
    arguments += ["--threads", "2", "--spinning", "off", "--graph-optimization", "extended", "-o", str(output)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    settings = load_result(output)["settings"]
    assert (settings["threads"], settings["spinning"], settings["graph_optimization"]) == (2, False, "extended")
    hint = next(line for line in result.output.splitlines() if line.startswith("next: vitprune profile"))
    assert "--threads 2 --spinning off --graph-optimization extended" in hint


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--backend", "torch-cpu", "--spinning", "off"], "--spinning: ONNX Runtime settings, for --backend ort-cpu"),
        (["--backend", "ort-cpu", "--graph-optimization", "most"], "graph optimisation must be one of"),
        (["--backend", "ort-cpu", "--spinning", "sometimes"], "spinning must be on, off or auto"),
    ],
)
def test_cli_profile_bad_runtime_settings_are_one_line(tmp_path, extra, message):
    result = runner.invoke(app, ["profile", "--model", TINY, *extra, "-o", str(tmp_path / "r.json")])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not any(tmp_path.iterdir())


def test_same_settings_options_pass_checked_values_only():
    from vitprune_export.cli.profile import same_settings_options

    hostile = {"threads": "2; rm -rf ~", "spinning": "yes", "graph_optimization": "all --force"}
    assert same_settings_options(hostile) == []
    assert same_settings_options({"threads": True, "spinning": True, "graph_optimization": "basic"}) == [
        "--spinning", "on", "--graph-optimization", "basic"
    ]  # fmt: skip
