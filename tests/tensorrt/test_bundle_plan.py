"""`vitprune bundle --plan`: the bundle ships the block parts and plan.sh; the parts build with a real
TensorRT (for RTX, no GPU needed to build), and plan.sh goes from timings to a schedule file that
`--schedule` reads, with a stand-in timer in place of the device's CUDA events (tests/measure/standins.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from tests.measure import standins
from vitprune_export.cli import app
from vitprune_export.export.block_parts import curve_points
from vitprune_export.measure.plan import cost_model
from vitprune_export.portable.plan import probe_rule
from vitprune_export.pruning.schedule import build_schedule, load_removed_counts
from vitprune_export.pruning.spec import resolve_method
from vitprune_export.record import ENGINE_MAGICS

from .trt_checks import requires_tensorrt_rtx

TINY = "vitprune_tiny_patch4_32"
POINTS = 3


def make_bundle(onnx_path: Path, folder: Path, profile: str, *extra: str):
    return CliRunner().invoke(
        app, ["bundle", str(onnx_path), "--profile", profile, "-o", str(folder), "--plan", "--plan-points", *extra]
    )


@pytest.fixture(scope="module")
def tiny_onnx(export_cache):
    _, result = export_cache(TINY, "topk", rate=0.1)
    return result.path


@pytest.fixture(scope="module")
def jetson_plan_bundle(tiny_onnx, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundles") / "orin-plan"
    result = make_bundle(tiny_onnx, folder, "jetson-orin-nano", str(POINTS))
    assert result.exit_code == 0, result.output
    assert "./plan.sh --speedup 1.5" in result.output
    return folder


def dims(value) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def test_bundle_ships_three_parts_per_token_count_and_plan_sh(jetson_plan_bundle):
    parts = json.loads((jetson_plan_bundle / "parts" / "parts.json").read_text())
    metadata = json.loads((jetson_plan_bundle / "metadata.json").read_text())
    tokens_in, num_prefix = parts["tokens_in"], parts["num_prefix"]
    assert tokens_in == metadata["keep_counts"][0] + metadata["schedule"]["removed"][0]
    assert parts["points"] == curve_points(tokens_in, num_prefix, POINTS) and len(parts["points"]) == POINTS
    assert parts["depth"] == len(metadata["keep_counts"]) and parts["method"] == "topk"
    assert sorted((p["kind"], p["tokens"]) for p in parts["parts"]) == sorted(
        (kind, n) for kind in ("block", "mlp", "reduce") for n in parts["points"]
    )
    bundle_settings = json.loads((jetson_plan_bundle / "build_settings.json").read_text())
    probe = probe_rule(parts["probe_share"], num_prefix, lambda n: n - num_prefix - 1)
    for part in parts["parts"]:
        graph = onnx.load(str(jetson_plan_bundle / "parts" / part["onnx"])).graph
        n = part["tokens"]
        (source,), (result,) = graph.input, graph.output
        assert dims(source)[:2] == [parts["batch"], n]  # static: batch and tokens
        assert dims(result)[1] == (n - probe(n) if part["kind"] == "reduce" else n)
        settings = json.loads(
            (jetson_plan_bundle / "parts" / part["onnx"].replace(".onnx", ".settings.json")).read_text()
        )
        assert settings["device"] == "jetson-orin-nano" and settings["shape_profile"] is None
        for key in ("flavour", "tensorrt_version", "builder_flags", "strongly_typed", "precision", "workspace_bytes"):
            assert settings[key] == bundle_settings[key], key  # the bundle's own builder, for the part's input
    plan_sh = jetson_plan_bundle / "plan.sh"
    assert os.access(plan_sh, os.X_OK)
    assert subprocess.run(["bash", "-n", str(plan_sh)], capture_output=True).returncode == 0
    manifest = json.loads((jetson_plan_bundle / "bundle.json").read_text())
    on_disk = {str(p.relative_to(jetson_plan_bundle)) for p in jetson_plan_bundle.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk and manifest["plan_points"] == POINTS
    assert "./plan.sh --speedup 1.5" in (jetson_plan_bundle / "README.md").read_text()


def test_plan_sh_refuses_a_bad_budget_in_one_line(jetson_plan_bundle, tmp_path):
    for words, message in (
        ([], "error: give a budget"),
        (["--speedup", "1.5; touch PWNED"], "error: --speedup needs a positive number"),
        (["--speedup", "1.5", "--latency-ms", "3"], "error: give one budget"),
        (["--fast"], "error: unknown argument '--fast'"),
    ):
        done = subprocess.run(
            [str(jetson_plan_bundle / "plan.sh"), *words], capture_output=True, text=True, cwd=tmp_path
        )
        assert done.returncode == 2 and done.stderr.startswith(message), (words, done.stderr)
    assert not list(jetson_plan_bundle.rglob("PWNED")) and not (jetson_plan_bundle / "results").exists()


def test_bad_plan_requests_are_one_line_and_write_nothing(tiny_onnx, tmp_path):
    result = make_bundle(tiny_onnx, tmp_path / "few", "jetson-orin-nano", "1")
    assert result.exit_code == 2 and "--plan takes 2 to 12 token counts, got 1" in result.output
    bare = tmp_path / "bare.onnx"
    model = onnx.load(str(tiny_onnx))
    del model.metadata_props[:]
    onnx.save(model, str(bare))
    result = make_bundle(bare, tmp_path / "bare", "jetson-orin-nano", "3")
    assert result.exit_code == 2 and "--plan needs the pruning record of 'vitprune export'" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bare.onnx"]


@pytest.mark.tensorrt
@requires_tensorrt_rtx
def test_parts_build_with_tensorrt_and_plan_sh_writes_a_schedule(tiny_onnx, tmp_path):
    bundle = tmp_path / "rtx-plan"
    assert make_bundle(tiny_onnx, bundle, "rtx-generic", str(POINTS)).exit_code == 0
    environment = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": ""}
    built = subprocess.run(["./build.sh"], capture_output=True, text=True, cwd=bundle, env=environment)
    assert built.returncode == 0, built.stderr
    timing_log = tmp_path / "timed.log"
    environment.update(
        PYTHON=str(standins.timing_python(tmp_path / "python3")),
        STANDIN_TIMING_LOG=str(timing_log),
        STANDIN_ENGINE_MS="1.0",
    )
    done = subprocess.run(
        ["./plan.sh", "--speedup", "1.5"], capture_output=True, text=True, cwd=bundle, env=environment
    )
    assert done.returncode == 0, done.stdout + done.stderr
    parts = json.loads((bundle / "parts" / "parts.json").read_text())
    for part in parts["parts"]:  # built by TensorRT for RTX itself
        assert (bundle / "parts" / part["onnx"]).with_suffix(".engine").read_bytes()[:4] in ENGINE_MAGICS

    # timed interleaved: every round visits the nine parts and the bundle's engine once, in the same order
    timed = [line.split()[0] for line in timing_log.read_text().splitlines()]
    rounds = [timed[i : i + 10] for i in range(0, len(timed), 10)]
    assert len(rounds) == 3 and all(r == rounds[0] for r in rounds) and len(set(rounds[0])) == 10

    # the curves are the stand-in's stepped latencies; the fixed cost makes the engine's own keep counts predict it
    device = bundle / "results" / "rtx-generic"
    (curves_path,) = (device / "curves").glob("*.json")
    curves = json.loads(curves_path.read_text())
    assert curves["backend"] == "trt" and curves["curves"]["block"]["tokens"] == parts["points"]
    expected = [0.05 + 0.02 * -(-n // 16) for n in parts["points"]]
    assert curves["curves"]["block"]["ms"] == pytest.approx(expected, rel=2e-3)
    metadata = json.loads((bundle / "metadata.json").read_text())
    model, _ = cost_model(curves)
    assert model.total(parts["tokens_in"], metadata["keep_counts"]) == pytest.approx(1.0, rel=2e-3)

    # the schedule: the format --schedule reads, valid for the method, predicted within the budget
    (schedule_path,) = (device / "plans").glob("*_x1.5.json")
    removed = load_removed_counts(schedule_path)
    schedule = build_schedule(
        parts["tokens_in"], parts["num_prefix"], parts["depth"], removed=removed, method=resolve_method("topk", {})
    )
    plan = json.loads(schedule_path.read_text())
    assert plan["tokens_out"] == list(schedule.tokens_out)
    unpruned = model.total(parts["tokens_in"], [parts["tokens_in"]] * parts["depth"])
    assert plan["budget_ms"] == pytest.approx(unpruned / 1.5, rel=1e-3)
    assert model.total(parts["tokens_in"], schedule.tokens_out) <= plan["budget_ms"] * (1 + 1e-6)

    # a second budget reuses the curves: nothing is timed again
    again = subprocess.run(
        ["./plan.sh", "--latency-ms", "0.9"], capture_output=True, text=True, cwd=bundle, env=environment
    )
    assert again.returncode == 0, again.stderr
    assert "curves measured before" in again.stdout and len(timing_log.read_text().splitlines()) == 30
    assert (device / "plans" / schedule_path.name.replace("_x1.5", "_0.9ms")).is_file()


def test_trt_curves_refuses_missing_engines_and_bad_inputs_in_one_line(jetson_plan_bundle, tmp_path, capsys):
    from vitprune_export.portable import trt_curves

    def never(*args):
        raise AssertionError("nothing may be timed")

    parts = jetson_plan_bundle / "parts" / "parts.json"
    short = tmp_path / "metadata.json"
    short.write_text(json.dumps({"keep_counts": [10, 9]}))
    not_parts = tmp_path / "x.json"
    not_parts.write_text("{}")
    output = tmp_path / "curves.json"
    for where, metadata, message in (
        (parts, jetson_plan_bundle / "metadata.json", "does not exist; plan.sh builds the part engines first"),
        (parts, short, "metadata.json has 2 keep counts for 6 blocks"),
        (not_parts, jetson_plan_bundle / "metadata.json", "is not a vitprune.parts/1 parts list"),
    ):
        argv = ["--parts", str(where), "--engine", "e.engine", "--metadata", str(metadata), "--output", str(output)]
        assert trt_curves.main(argv, timer=never) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and message in error and error.count("\n") == 1, error
        assert not output.exists()
